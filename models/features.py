"""Names shared by the ingestion, Transform, Trainer, export and evaluation code."""

import re

# Raw features: what ingestion writes into every tf.Example.
TEXT_KEY = 'text'
LABEL_KEY = 'label'

# Raw features a span run's ingestion adds for measuring drift between spans (not model inputs).
WORD_COUNT_KEY = 'word_count'
WORDS_KEY = 'words'
_WORD = re.compile(r'\w+')


def words_of(text: str) -> list:
  """The lower-cased words of `text`, in order: what the vocabulary drift is measured on."""
  return _WORD.findall(text.lower())


# Transformed features: what the Transform graph produces.
TOKEN_IDS_KEY = 'token_ids'
LABEL_ID_KEY = 'label_id'
LENGTH_BUCKET_KEY = 'length_bucket'

# Files the Transform graph carries as assets.
LABEL_VOCABULARY_NAME = 'labels'
WORDPIECE_VOCABULARY_NAME = 'wordpiece_vocab.txt'

# Reserved WordPiece tokens; [PAD] must be id 0 (padding and Keras masking rely on it).
PAD_TOKEN = '[PAD]'
UNKNOWN_TOKEN = '[UNK]'
RESERVED_TOKENS = (PAD_TOKEN, UNKNOWN_TOKEN)

# The from-scratch model's token (and position) embedding layer; the pretrained model's backbone.
EMBEDDING_LAYER = 'token_and_position_embedding'
BACKBONE_LAYER = 'backbone'

# TFMA's name for the metric the Evaluator gates on and the summaries lead with.
ACCURACY_METRIC = 'sparse_categorical_accuracy'

# Outputs of the exported model's signatures.
PROBABILITIES_KEY = 'probabilities'
PREDICTED_LABEL_KEY = 'label'

# Signature names of the exported SavedModel.
SERVING_SIGNATURE = 'serving_default'
TF_EXAMPLE_SIGNATURE = 'serving_tf_example'
TRANSFORM_SIGNATURE = 'transform_features'
