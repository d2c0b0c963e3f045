"""Exports the trained model with the Transform graph inside, for TF Serving and TFMA.

Signatures:
  serving_default     text: string [batch]          -> probabilities [batch, classes], label [batch]
  serving_tf_example  examples: serialized tf.Example -> the same outputs (TFMA, batch inference)
  transform_features  examples: serialized tf.Example -> transformed features (TFMA labels, slices)

The Transform layer is a tf_keras object, so it cannot be part of the Keras 3 model; it is tracked
by the export archive and called inside the endpoints instead.
"""

import os
import shutil
from typing import Dict, List

import keras
import tensorflow as tf
import tensorflow_transform as tft

from models import features, warmup

# The SavedModel holds every float32 weight once, plus graphs, the vocabulary and warm-up
# requests (0.7 MB for a tiny model); the margin also covers the TensorBoard logs.
EXPORT_BYTES_PER_WEIGHT = 4 * 1.1
EXPORT_FIXED_BYTES = 16 * 2**20


class NoRoomError(OSError):
  """The export would not fit on its filesystem."""


def megabytes_on_disk(path: str) -> float:
  """The size of an exported model (any directory): every file under it, in MB."""
  return sum(os.path.getsize(os.path.join(folder, name))
             for folder, _, names in os.walk(path) for name in names) / 1e6


def export_bytes_needed(model: keras.Model) -> int:
  return int(model.count_params() * EXPORT_BYTES_PER_WEIGHT) + EXPORT_FIXED_BYTES


def check_room(export_dir: str, needed_bytes: int) -> None:
  """Raises NoRoomError when export_dir's filesystem has less than `needed_bytes` free. Run
  before training, which would otherwise use its whole budget and fail when it saves. Object
  stores (gs://...) have no free-space figure and are not checked."""
  if '://' in export_dir:
    return
  existing = os.path.abspath(export_dir)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  free = shutil.disk_usage(existing).free
  if free < needed_bytes:
    raise NoRoomError(
        f'{existing} has {free / 1e6:.0f} MB free; the exported model needs about '
        f'{needed_bytes / 1e6:.0f} MB. Free some space, or set another output folder, before '
        'training.')


def trim_padding(token_ids: tf.Tensor) -> tf.Tensor:
  """Drops the padding columns after the batch's longest text: Transform pads every text to
  max_seq_length, and a short request would otherwise pay for all of it (padding is masked, so
  the probabilities are the same)."""
  longest = tf.reduce_max(tf.reduce_sum(tf.cast(tf.not_equal(token_ids, 0), tf.int32), axis=-1))
  return token_ids[:, :longest]


def export_serving_model(model: keras.Model, tf_transform_output: tft.TFTransformOutput,
                         class_names: List[str], export_dir: str) -> None:
  transform_layer = tf_transform_output.transform_features_layer()
  raw_feature_spec = tf_transform_output.raw_feature_spec()
  serving_feature_spec = {key: spec for key, spec in raw_feature_spec.items()
                          if key != features.LABEL_KEY}
  class_name_table = tf.constant(class_names)

  def predict(raw_features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    transformed = transform_layer(raw_features)
    probabilities = model({features.TOKEN_IDS_KEY: trim_padding(
        transformed[features.TOKEN_IDS_KEY])}, training=False)
    return {
        features.PROBABILITIES_KEY: probabilities,
        features.PREDICTED_LABEL_KEY: tf.gather(class_name_table,
                                                tf.argmax(probabilities, axis=-1)),
    }

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='text')])
  def serve_text(text):
    # The schema may declare the text as shape [1] per example (SchemaGen's inferred shape).
    text_shape = raw_feature_spec[features.TEXT_KEY].shape
    return predict({features.TEXT_KEY: tf.reshape(text, [-1] + list(text_shape))})

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
  def serve_tf_examples(examples):
    return predict(tf.io.parse_example(examples, serving_feature_spec))

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
  def transform_features(examples):
    return transform_layer(tf.io.parse_example(examples, raw_feature_spec))

  archive = keras.export.ExportArchive()
  # The model's tf.Variables, the very objects the endpoints capture, under the names the loaded
  # model offers (`variables`, `trainable_variables`: warm start and distillation read them).
  # `archive.track(model)` would add the model's keras.Variable wrappers instead: TF's saver
  # tells objects apart by identity, so it would store every weight twice, once per wrapper and
  # once per captured tf.Variable (keras-team/keras#23553, Keras 3.15).
  for collection in ('variables', 'trainable_variables', 'non_trainable_variables'):
    archive.add_variable_collection(
        collection, [variable.value for variable in getattr(model, collection)])
  archive.track(transform_layer)  # its vocabulary tables and assets
  archive.add_endpoint(features.SERVING_SIGNATURE, serve_text)
  archive.add_endpoint(features.TF_EXAMPLE_SIGNATURE, serve_tf_examples)
  archive.add_endpoint(features.TRANSFORM_SIGNATURE, transform_features)
  archive.write_out(export_dir, verbose=False)
  warmup.write_warmup_requests(export_dir)
