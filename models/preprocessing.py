"""The Transform `preprocessing_fn`: raw text and label in, WordPiece ids and label ids out.

Everything here becomes part of the Transform graph, which the exported model carries, so training
and serving tokenize identically. The graph uses only core TF and TF Text ops.
"""

import contextlib
import dataclasses
import os
from typing import Any, Dict, List, Optional, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
# BasicTokenizer (BERT's normalisation and punctuation split) is not re-exported at the top level.
from tensorflow_text.python.ops.bert_tokenizer import BasicTokenizer
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib

from models import backbone, features
from models.settings import ModelSettings, PreprocessingSettings, from_custom_config

# Word-count buckets for the evaluation slice "length_bucket": lower edges and names.
LENGTH_BUCKET_BOUNDARIES = (6, 11, 21, 41)
LENGTH_BUCKET_NAMES = ('01-05 words', '06-10 words', '11-20 words', '21-40 words', '41+ words')


class WordPieceVocabulary(tft_beam.experimental.PTransformAnalyzer):
  """Beam analyzer: writes the WordPiece vocabulary file Transform tokenizes with, and returns its
  path (one token per line, line number = token id).

  With `tokens` (a pretrained backbone's vocabulary) it writes those; otherwise it counts words
  over the dataset and learns a vocabulary from them, reserved tokens first. Input elements are
  batches (tuples of one ndarray of words). Either way the file becomes an asset of the Transform
  graph, which the exported model carries.
  """

  def __init__(self, settings: PreprocessingSettings, tokens: Optional[List[str]] = None):
    super().__init__()
    self._settings = settings
    self._tokens = tokens

  def expand(self, batches):
    if self._tokens is not None:
      return (batches
              | 'Count' >> beam.combiners.Count.Globally()
              | 'Write' >> beam.Map(lambda _: self._write(self._tokens)))
    return (
        batches
        | 'Words' >> beam.FlatMap(lambda batch: batch[0])
        | 'CountWords' >> beam.combiners.Count.PerElement()
        | 'AllCounts' >> beam.combiners.ToList()
        | 'LearnAndWrite' >> beam.Map(lambda word_counts: self._write(learn_wordpiece_vocabulary(
            [(word.decode('utf-8'), count) for word, count in word_counts],
            self._settings.vocab_size, self._settings.min_word_count))))

  def _write(self, tokens: List[str]) -> np.ndarray:
    path = os.path.join(self.base_temp_dir, features.WORDPIECE_VOCABULARY_NAME)
    tf.io.gfile.makedirs(self.base_temp_dir)
    with tf.io.gfile.GFile(path, 'w') as f:
      f.write(''.join(token + '\n' for token in tokens))
    return np.array(path.encode('utf-8'))


def learn_wordpiece_vocabulary(word_counts: List[Tuple[str, int]], vocab_size: int,
                               min_word_count: int) -> List[str]:
  """WordPiece vocabulary (reserved tokens first) from (word, count) pairs."""
  if not word_counts:
    raise ValueError('Cannot learn a WordPiece vocabulary: the training split has no words.')
  return wordpiece_tokenizer_learner_lib.learn(
      word_counts,
      vocab_size=vocab_size,
      reserved_tokens=list(features.RESERVED_TOKENS),
      lower_thresh=min_word_count)


def _basic_tokenizer() -> BasicTokenizer:
  # Lower-casing applies NFD and strips accents; punctuation becomes separate words.
  return BasicTokenizer(lower_case=True)


@dataclasses.dataclass(frozen=True)
class Tokenization:
  """How text becomes WordPiece ids, beyond the vocabulary itself."""
  lower_case: bool  # lower-case, NFD and strip accents (BERT uncased)
  unknown_token: str
  unknown_id: int
  # A pretrained backbone's [CLS] and [SEP] ids, put around every text; None: no such tokens.
  boundary_ids: Optional[Tuple[int, int]] = None


# The from-scratch model's vocabulary: learned, reserved tokens first.
LEARNED_TOKENIZATION = Tokenization(
    lower_case=True, unknown_token=features.UNKNOWN_TOKEN,
    unknown_id=features.RESERVED_TOKENS.index(features.UNKNOWN_TOKEN))


def backbone_tokenization(vocabulary: backbone.Vocabulary) -> Tokenization:
  tokens = vocabulary.tokens
  return Tokenization(
      lower_case=vocabulary.lower_case, unknown_token=vocabulary.unknown_token,
      unknown_id=tokens.index(vocabulary.unknown_token),
      boundary_ids=(tokens.index(vocabulary.cls_token), tokens.index(vocabulary.sep_token)))


def _wordpiece_lookup_fn(max_seq_length: int, tokenization: Tokenization):
  """A `tft.apply_vocabulary` lookup_fn: text -> dense [batch, max_seq_length] WordPiece ids.

  Ids are truncated and padded with id 0 ([PAD]). In the final graph the vocabulary path is a
  constant: the table is then built once, outside the traced function (tf.init_scope), instead of
  being re-initialised from the file on every call.
  """
  def lookup(text: tf.Tensor, vocab_path) -> Tuple[tf.Tensor, tf.Tensor]:
    with contextlib.ExitStack() as stack:
      if tf.inside_function() and not tf.is_symbolic_tensor(vocab_path):
        stack.enter_context(tf.init_scope())
      table = tf.lookup.StaticHashTable(
          tf.lookup.TextFileInitializer(
              vocab_path,
              key_dtype=tf.string, key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
              value_dtype=tf.int64, value_index=tf.lookup.TextFileIndex.LINE_NUMBER),
          default_value=-1)
    tokenizer = tf_text.BertTokenizer(
        table, token_out_type=tf.int64, unknown_token=tokenization.unknown_token,
        lower_case=tokenization.lower_case)
    ids = tokenizer.tokenize(text).merge_dims(-2, -1)  # [batch, words, pieces] -> [batch, pieces]
    if tokenization.boundary_ids:
      start_id, end_id = tokenization.boundary_ids
      ids, _ = tf_text.combine_segments([ids[:, :max_seq_length - 2]],
                                        start_of_sequence_id=start_id, end_of_segment_id=end_id)
    dense = ids[:, :max_seq_length].to_tensor(default_value=0, shape=[None, max_seq_length])
    # A text without tokens (empty, or only spaces or control characters at serving time) is one
    # unknown token: an all-padding row would leave the model's masked pooling nothing to average.
    unknown_only = tf.one_hot(0, max_seq_length, on_value=tokenization.unknown_id, off_value=0,
                              dtype=tf.int64)
    return tf.where(tf.equal(dense[:, :1], 0), unknown_only, dense), table.size()
  return lookup


def _length_bucket(words: tf.RaggedTensor) -> tf.Tensor:
  word_counts = tf.cast(words.row_lengths(), tf.float32)
  bucket = tf.raw_ops.Bucketize(input=word_counts, boundaries=list(LENGTH_BUCKET_BOUNDARIES))
  return tf.gather(tf.constant(LENGTH_BUCKET_NAMES), bucket)


def preprocessing_fn(inputs: Dict[str, tf.Tensor],
                     custom_config: Dict[str, Any]) -> Dict[str, tf.Tensor]:
  """TFX Transform entry point.

  `custom_config`: {'preprocessing': PreprocessingSettings as a dict, 'model': the ModelSettings
  fields that decide the tokenization (architecture, backbone), 'label_names': [class names]}.
  """
  settings = from_custom_config(PreprocessingSettings, custom_config['preprocessing'])
  model = from_custom_config(ModelSettings, custom_config['model'])
  if model.architecture == 'pretrained':
    vocabulary = backbone.load_vocabulary(model.backbone)
    tokens, tokenization = vocabulary.tokens, backbone_tokenization(vocabulary)
  else:
    tokens, tokenization = None, LEARNED_TOKENIZATION
  text = tf.reshape(inputs[features.TEXT_KEY], [-1])
  words = _basic_tokenizer().tokenize(text)

  vocab_path = tft.experimental.ptransform_analyzer(
      inputs=[words.flat_values],
      ptransform=WordPieceVocabulary(settings, tokens),
      output_dtypes=[tf.string],
      output_shapes=[[]],
      output_asset_default_values=['\n'.join(features.RESERVED_TOKENS).encode('utf-8')],
      name='wordpiece_vocabulary')[0]

  label = tf.reshape(inputs[features.LABEL_KEY], [-1])
  # Configured class names keep their order (class id = position); otherwise the classes are
  # learned from the data.
  label_id = tft.compute_and_apply_vocabulary(
      label,
      vocab_filename=features.LABEL_VOCABULARY_NAME,
      reserved_tokens=list(custom_config['label_names']) or None,
      num_oov_buckets=0,
      default_value=-1)

  return {
      features.TOKEN_IDS_KEY: tft.apply_vocabulary(
          text, vocab_path, default_value=0,
          lookup_fn=_wordpiece_lookup_fn(settings.max_seq_length, tokenization)),
      features.LABEL_ID_KEY: label_id,
      features.LENGTH_BUCKET_KEY: _length_bucket(words),
  }
