"""A pretrained KerasHub encoder fine-tuned with a classification head (architecture
'pretrained'), and the vocabulary Transform tokenizes with for it.

Backbones load with KerasHub's `from_preset`: a preset name or a kaggle:// / hf:// handle
(downloaded where the machine has internet), a local KerasHub preset directory, a Hugging Face
checkpoint directory (config.json + model.safetensors + vocab.txt), or 'package://<package>/<dir>'
for a checkpoint shipped inside an installed Python package (the default, so a run needs no
download). Encoders with a WordPiece tokenizer work (BERT, DistilBERT, ELECTRA and their
checkpoints); others (BPE or SentencePiece tokenizers: RoBERTa, DeBERTa, ALBERT, ...) are refused
with a clear error, since Transform tokenizes with tf.text's WordPiece ops, the ones TF Serving
links.
"""

import dataclasses
from typing import List

import keras
import keras_hub

from models import features, heads
from models.backbone_handle import resolve_handle
from models.settings import ModelSettings

# Vocabulary field -> the tokenizer's attribute.
_SPECIAL_TOKENS = {'pad_token': 'pad_token', 'unknown_token': 'oov_token', 'cls_token': 'cls_token',
                   'sep_token': 'sep_token'}


@dataclasses.dataclass(frozen=True)
class Vocabulary:
  """What Transform needs to tokenize like the backbone's own tokenizer."""
  tokens: List[str]
  lower_case: bool  # lower-case, NFD and strip accents (BERT uncased)
  pad_token: str
  unknown_token: str
  cls_token: str
  sep_token: str


def load_vocabulary(backbone: str) -> Vocabulary:
  """The backbone's WordPiece vocabulary and normalisation, from its preset's tokenizer."""
  tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(resolve_handle(backbone))
  if not isinstance(tokenizer, keras_hub.tokenizers.WordPieceTokenizer):
    raise ValueError(
        f'Backbone {backbone!r} has a {type(tokenizer).__name__}; only WordPiece tokenizers '
        '(BERT, DistilBERT, ELECTRA) can be tokenized in the serving graph with TF Text.')
  vocabulary = Vocabulary(tokens=list(tokenizer.get_vocabulary()),
                          lower_case=bool(tokenizer.lowercase),
                          **{field: getattr(tokenizer, attribute)
                             for field, attribute in _SPECIAL_TOKENS.items()})
  if vocabulary.tokens.index(vocabulary.pad_token) != 0:
    raise ValueError(f'Backbone {backbone!r}: its padding token {vocabulary.pad_token!r} must '
                     'have id 0 (the padding mask is token_ids != 0).')
  return vocabulary


def build_classifier(settings: ModelSettings, vocabulary_size: int, max_seq_length: int,
                     num_classes: int) -> keras.Model:
  """Token ids [batch, length] ([CLS] ... [SEP], 0 = padding) -> probabilities [batch, classes]."""
  # num_layers: the checkpoint's first N layers are loaded (KerasHub converts a Hugging Face
  # checkpoint layer by layer; a KerasHub preset's weights file must match whole).
  layers = {'num_layers': settings.backbone_layers} if settings.backbone_layers else {}
  backbone = keras_hub.models.Backbone.from_preset(resolve_handle(settings.backbone),
                                                   name=features.BACKBONE_LAYER, **layers)
  if backbone.token_embedding.input_dim != vocabulary_size:
    raise ValueError(f'Backbone {settings.backbone!r} has {backbone.token_embedding.input_dim} '
                     f'token embeddings, the Transform vocabulary {vocabulary_size} tokens: the '
                     'Transform output was made for another model.')
  if max_seq_length > backbone.max_sequence_length:
    raise ValueError(f'preprocessing.max_seq_length {max_seq_length} exceeds the backbone\'s '
                     f'{backbone.max_sequence_length} positions.')
  freeze(backbone, settings)

  token_ids = keras.Input(shape=(None,), dtype='int64', name=features.TOKEN_IDS_KEY)
  padding_mask = keras.ops.not_equal(token_ids, 0)
  inputs = {'token_ids': token_ids, 'padding_mask': padding_mask}
  if 'segment_ids' in {tensor.name for tensor in backbone.inputs}:
    inputs['segment_ids'] = keras.ops.zeros_like(token_ids)  # one segment
  outputs = backbone(inputs)
  if not isinstance(outputs, dict):  # DistilBERT: the sequence output alone
    outputs = {'sequence_output': outputs}
  if settings.pooling == 'cls':
    text_vectors = (outputs['pooled_output'] if 'pooled_output' in outputs
                    else outputs['sequence_output'][:, 0, :])
  else:
    text_vectors = heads.pool(outputs['sequence_output'], padding_mask, settings.pooling)
  return keras.Model({features.TOKEN_IDS_KEY: token_ids},
                     heads.class_probabilities(text_vectors, num_classes, settings.dropout))


def freeze(backbone: keras.Model, settings: ModelSettings) -> None:
  """Leaves the token embeddings and the lowest `frozen_layers` Transformer layers untrained, and
  the [CLS] pooler unless the head uses it."""
  if settings.frozen_layers > backbone.num_layers:
    raise ValueError(f'model.frozen_layers {settings.frozen_layers} exceeds the backbone\'s '
                     f'{backbone.num_layers} layers.')
  if settings.freeze_embeddings:
    backbone.token_embedding.trainable = False
  for index in range(settings.frozen_layers):
    backbone.get_layer(f'transformer_layer_{index}').trainable = False
  if settings.pooling != 'cls':
    for layer in backbone.layers:
      if layer.name == 'pooled_dense':
        layer.trainable = False


def token_embeddings(model: keras.Model):
  """The token embedding matrix [vocabulary, width] (warm start copies its rows by token)."""
  return model.get_layer(features.BACKBONE_LAYER).token_embedding.embeddings
