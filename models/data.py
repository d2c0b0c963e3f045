"""The Trainer's input pipeline: Transform's examples as length-bucketed batches of token ids
and label ids, and what the Transform output says about them (vocabulary, length, classes)."""

import os
from typing import Dict, List, Tuple

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from models import features
from models.settings import TrainingSettings


def make_dataset(file_pattern: List[str], data_accessor: tfx.components.DataAccessor,
                 tf_transform_output: tft.TFTransformOutput, batch_size: int,
                 for_training: bool, settings: TrainingSettings, holdout_percent: int = 0,
                 held_out: bool = False) -> tf.data.Dataset:
  """One pass over transformed examples as ({token_ids}, label_id) batches, in random order
  for training. With `holdout_percent`, only the examples that a hash of their token ids puts in
  that share (`held_out`), or only the others."""
  dataset = data_accessor.tf_dataset_factory(
      file_pattern,
      tfxio.TensorFlowDatasetOptions(
          batch_size=batch_size, label_key=features.LABEL_ID_KEY, num_epochs=1,
          shuffle=for_training, shuffle_buffer_size=settings.shuffle_buffer_size,
          shuffle_seed=settings.seed),
      tf_transform_output.transformed_metadata.schema)
  dataset = dataset.map(
      lambda feats, label: ({features.TOKEN_IDS_KEY: feats[features.TOKEN_IDS_KEY]}, label),
      num_parallel_calls=tf.data.AUTOTUNE)
  if holdout_percent:
    dataset = dataset.map(
        lambda inputs, label: keep_share(inputs, label, holdout_percent, held_out),
        num_parallel_calls=tf.data.AUTOTUNE)
  if settings.length_buckets:
    dataset = bucket_by_length(dataset, batch_size, settings.length_buckets)
  return sharded_by_data(dataset.prefetch(tf.data.AUTOTUNE))


def sharded_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """With several workers, each reads all the data (in the same seeded order) and keeps its share
  of every global batch: all run the same, counted, number of steps. Sharding by file (the
  default policy's first choice) would give them unequal numbers of batches."""
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return dataset.with_options(options)


def keep_share(inputs, label, percent: int, held_out: bool):
  """The rows of a batch whose token ids hash into the first `percent` of 100 buckets (or the
  others). Ingestion removed duplicate texts, so no text is on both sides."""
  token_ids = inputs[features.TOKEN_IDS_KEY]
  text_keys = tf.strings.reduce_join(tf.strings.as_string(token_ids), axis=-1, separator=' ')
  in_share = tf.strings.to_hash_bucket_fast(text_keys, 100) < percent
  keep = in_share if held_out else tf.logical_not(in_share)
  return {features.TOKEN_IDS_KEY: tf.boolean_mask(token_ids, keep)}, tf.boolean_mask(label, keep)


def _token_count(token_ids: tf.Tensor) -> tf.Tensor:
  return tf.reduce_sum(tf.cast(tf.not_equal(token_ids, 0), tf.int32), axis=-1)


def bucket_by_length(dataset: tf.data.Dataset, batch_size: int,
                     boundaries: Tuple[int, ...]) -> tf.data.Dataset:
  """Re-batches padded examples so each batch holds similar lengths and is padded to its longest.

  Short phrases then cost a fraction of a max_seq_length-long row (SST-2's median is ~9 tokens).
  Lengths and buckets are computed, and batches trimmed, a whole batch at a time: per example
  there is only the regrouping (a quarter of the CPU time of tf.data's bucket_by_sequence_length,
  for the same batches), and the input pipeline shares the cores with training.
  """
  def add_bucket(inputs, label):
    lengths = _token_count(inputs[features.TOKEN_IDS_KEY])
    buckets = tf.raw_ops.Bucketize(input=lengths, boundaries=[float(b) for b in boundaries])
    return inputs, label, tf.cast(buckets, tf.int64), lengths

  def trim(inputs, label, _, lengths):
    token_ids = inputs[features.TOKEN_IDS_KEY][:, :tf.reduce_max(lengths)]
    return {features.TOKEN_IDS_KEY: token_ids}, label

  return (dataset.map(add_bucket, num_parallel_calls=tf.data.AUTOTUNE)
          .unbatch()
          .group_by_window(key_func=lambda inputs, label, bucket, length: bucket,
                           reduce_func=lambda bucket, examples: examples.batch(batch_size),
                           window_size=batch_size)
          .map(trim, num_parallel_calls=tf.data.AUTOTUNE))


def with_known_length(dataset: tf.data.Dataset) -> Tuple[tf.data.Dataset, int, int]:
  """(`dataset` with its cardinality set, batches, examples), from one counting pass.

  Known epoch lengths let the schedule span the whole run, Keras show progress, and evaluation
  end without running out of data."""
  batches, examples = dataset.reduce(
      (0, 0), lambda counts, batch: (counts[0] + 1, counts[1] + tf.shape(batch[1])[0]))
  batches, examples = int(batches), int(examples)
  return dataset.apply(tf.data.experimental.assert_cardinality(batches)), batches, examples


def balanced_class_weights(dataset: tf.data.Dataset, num_classes: int) -> Dict[int, float]:
  """Class id -> examples / (classes × the class's examples): every class weighs the same in
  the loss, however rare. A class with no training examples gets weight 1."""
  counts = dataset.reduce(
      tf.zeros([num_classes], tf.int64),
      lambda counts, batch: counts + tf.math.bincount(
          tf.reshape(batch[1], [-1]), minlength=num_classes, maxlength=num_classes,
          dtype=tf.int64)).numpy()
  return {class_id: float(counts.sum() / (num_classes * count)) if count else 1.0
          for class_id, count in enumerate(counts)}


def read_vocabulary(path: str) -> List[str]:
  """A vocabulary file's tokens, in token-id order."""
  with tf.io.gfile.GFile(path) as f:
    return [line.rstrip('\n') for line in f]


def vocabulary(tf_transform_output: tft.TFTransformOutput) -> List[str]:
  """The tokens Transform maps text to, in token-id order."""
  return read_vocabulary(os.path.join(
      tf_transform_output.transform_savedmodel_dir, 'assets', features.WORDPIECE_VOCABULARY_NAME))


def max_seq_length(tf_transform_output: tft.TFTransformOutput) -> int:
  """The token ids' padded length, as Transform wrote it."""
  return tf_transform_output.transformed_feature_spec()[features.TOKEN_IDS_KEY].shape[0]


def label_names(tf_transform_output: tft.TFTransformOutput) -> List[str]:
  return [name.decode('utf-8')
          for name in tf_transform_output.vocabulary_by_name(features.LABEL_VOCABULARY_NAME)]
