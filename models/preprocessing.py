"""The Transform `preprocessing_fn`: raw text and label in, WordPiece ids and label ids out.

Everything here becomes part of the Transform graph, which the exported model carries, so training
and serving tokenize identically. The graph uses only core TF and TF Text ops.
"""

import contextlib
import os
from typing import Any, Dict, List, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
# BasicTokenizer (BERT's normalisation and punctuation split) is not re-exported at the top level.
from tensorflow_text.python.ops.bert_tokenizer import BasicTokenizer
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib

from models import features
from pipeline.config import PreprocessingSettings, from_custom_config

# Word-count buckets for the evaluation slice "length_bucket": lower edges and names.
LENGTH_BUCKET_BOUNDARIES = (6, 11, 21, 41)
LENGTH_BUCKET_NAMES = ('01-05 words', '06-10 words', '11-20 words', '21-40 words', '41+ words')


class LearnWordPieceVocabulary(tft_beam.experimental.PTransformAnalyzer):
  """Beam analyzer: counts words over the dataset and learns a WordPiece vocabulary from them.

  Input elements are batches (tuples of one ndarray of words); the output is the path of the
  vocabulary file, one token per line, line number = token id, reserved tokens first.
  """

  def __init__(self, vocab_size: int, min_word_count: int):
    super().__init__()
    self._vocab_size = vocab_size
    self._min_word_count = min_word_count

  def expand(self, batches):
    return (
        batches
        | 'Words' >> beam.FlatMap(lambda batch: batch[0])
        | 'CountWords' >> beam.combiners.Count.PerElement()
        | 'AllCounts' >> beam.combiners.ToList()
        | 'LearnAndWrite' >> beam.Map(self._learn_and_write))

  def _learn_and_write(self, word_counts: List[Tuple[bytes, int]]) -> np.ndarray:
    vocab = learn_wordpiece_vocabulary(
        [(word.decode('utf-8'), count) for word, count in word_counts],
        self._vocab_size, self._min_word_count)
    path = os.path.join(self.base_temp_dir, features.WORDPIECE_VOCABULARY_NAME)
    tf.io.gfile.makedirs(self.base_temp_dir)
    with tf.io.gfile.GFile(path, 'w') as f:
      f.write(''.join(token + '\n' for token in vocab))
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


_UNKNOWN_ID = features.RESERVED_TOKENS.index(features.UNKNOWN_TOKEN)


def _wordpiece_lookup_fn(max_seq_length: int):
  """A `tft.apply_vocabulary` lookup_fn: text -> dense [batch, max_seq_length] WordPiece ids.

  Ids are truncated and padded with [PAD] (id 0). In the final graph the vocabulary path is a
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
        table, token_out_type=tf.int64, unknown_token=features.UNKNOWN_TOKEN, lower_case=True)
    ids = tokenizer.tokenize(text).merge_dims(-2, -1)  # [batch, words, pieces] -> [batch, pieces]
    dense = ids[:, :max_seq_length].to_tensor(default_value=0, shape=[None, max_seq_length])
    # A text without tokens (empty, or only spaces or control characters at serving time) is one
    # unknown token: an all-padding row would leave the model's masked pooling nothing to average.
    unknown_only = tf.one_hot(0, max_seq_length, on_value=_UNKNOWN_ID, off_value=0, dtype=tf.int64)
    return tf.where(tf.equal(dense[:, :1], 0), unknown_only, dense), table.size()
  return lookup


def _length_bucket(words: tf.RaggedTensor) -> tf.Tensor:
  word_counts = tf.cast(words.row_lengths(), tf.float32)
  bucket = tf.raw_ops.Bucketize(input=word_counts, boundaries=list(LENGTH_BUCKET_BOUNDARIES))
  return tf.gather(tf.constant(LENGTH_BUCKET_NAMES), bucket)


def preprocessing_fn(inputs: Dict[str, tf.Tensor],
                     custom_config: Dict[str, Any]) -> Dict[str, tf.Tensor]:
  """TFX Transform entry point.

  `custom_config`: {'preprocessing': PreprocessingSettings as a dict, 'label_names': [class names]}.
  """
  settings = from_custom_config(PreprocessingSettings, custom_config['preprocessing'])
  text = tf.reshape(inputs[features.TEXT_KEY], [-1])
  words = _basic_tokenizer().tokenize(text)

  vocab_path = tft.experimental.ptransform_analyzer(
      inputs=[words.flat_values],
      ptransform=LearnWordPieceVocabulary(settings.vocab_size, settings.min_word_count),
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
          lookup_fn=_wordpiece_lookup_fn(settings.max_seq_length)),
      features.LABEL_ID_KEY: label_id,
      features.LENGTH_BUCKET_KEY: _length_bucket(words),
  }
