"""The KerasNLP Transformer classifier and the TFX Trainer entry point `run_fn`."""

import os
from typing import List, Tuple

import keras
import keras_nlp
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from models import export, features, strategy as strategy_lib
from pipeline.config import ModelSettings, TrainingSettings, from_custom_config


def build_model(vocab_size: int, max_seq_length: int, num_classes: int,
                settings: ModelSettings) -> keras.Model:
  """Token ids [batch, max_seq_length] (0 = padding) -> class probabilities [batch, classes]."""
  # The length is left open: batches may be trimmed to their longest member (length buckets).
  token_ids = keras.Input(shape=(None,), dtype='int64', name=features.TOKEN_IDS_KEY)
  # Padding (id 0) is masked explicitly in attention and in the pooling.
  padding_mask = keras.ops.not_equal(token_ids, 0)
  x = keras_nlp.layers.TokenAndPositionEmbedding(
      vocabulary_size=vocab_size, sequence_length=max_seq_length,
      embedding_dim=settings.embedding_dim)(token_ids)
  x = keras.layers.Dropout(settings.dropout)(x)
  for _ in range(settings.num_layers):
    x = keras_nlp.layers.TransformerEncoder(
        intermediate_dim=settings.intermediate_dim, num_heads=settings.num_heads,
        dropout=settings.dropout)(x, padding_mask=padding_mask)
  x = keras.layers.GlobalAveragePooling1D()(x, mask=padding_mask)
  x = keras.layers.Dropout(settings.dropout)(x)
  probabilities = keras.layers.Dense(num_classes, activation='softmax', dtype='float32',
                                     name=features.PROBABILITIES_KEY)(x)
  return keras.Model({features.TOKEN_IDS_KEY: token_ids}, probabilities)


def compile_model(model: keras.Model, total_steps: int, settings: TrainingSettings) -> None:
  """AdamW with linear warm-up then cosine decay over `total_steps`."""
  warmup_steps = int(total_steps * settings.warmup_fraction)
  schedule = keras.optimizers.schedules.CosineDecay(
      initial_learning_rate=0.0, decay_steps=max(total_steps - warmup_steps, 1),
      warmup_target=settings.learning_rate, warmup_steps=warmup_steps)
  model.compile(
      optimizer=keras.optimizers.AdamW(learning_rate=schedule,
                                       weight_decay=settings.weight_decay),
      loss=keras.losses.SparseCategoricalCrossentropy(),
      metrics=[keras.metrics.SparseCategoricalAccuracy(name='accuracy')],
      jit_compile=settings.jit_compile,
      steps_per_execution=settings.steps_per_execution)


def make_dataset(file_pattern: List[str], data_accessor: tfx.components.DataAccessor,
                 tf_transform_output: tft.TFTransformOutput, batch_size: int,
                 shuffle: bool, settings: TrainingSettings) -> tf.data.Dataset:
  """One pass over transformed examples as ({token_ids}, label_id) batches."""
  dataset = data_accessor.tf_dataset_factory(
      file_pattern,
      tfxio.TensorFlowDatasetOptions(
          batch_size=batch_size, label_key=features.LABEL_ID_KEY, num_epochs=1,
          shuffle=shuffle, shuffle_buffer_size=settings.shuffle_buffer_size,
          shuffle_seed=settings.seed),
      tf_transform_output.transformed_metadata.schema)
  dataset = dataset.map(
      lambda feats, label: ({features.TOKEN_IDS_KEY: feats[features.TOKEN_IDS_KEY]}, label),
      num_parallel_calls=tf.data.AUTOTUNE)
  if settings.length_buckets:
    dataset = bucket_by_length(dataset, batch_size, settings.length_buckets)
  return dataset.prefetch(tf.data.AUTOTUNE)


def _token_count(token_ids: tf.Tensor) -> tf.Tensor:
  return tf.reduce_sum(tf.cast(tf.not_equal(token_ids, 0), tf.int32), axis=-1)


def bucket_by_length(dataset: tf.data.Dataset, batch_size: int,
                     boundaries: Tuple[int, ...]) -> tf.data.Dataset:
  """Re-batches padded examples so each batch holds similar lengths and is padded to its longest.

  Short phrases then cost a fraction of a max_seq_length-long row (SST-2's median is ~9 tokens).
  """
  def trim(inputs, label):
    token_ids = inputs[features.TOKEN_IDS_KEY]
    return {features.TOKEN_IDS_KEY: token_ids[:_token_count(token_ids)]}, label

  return dataset.unbatch().map(trim, num_parallel_calls=tf.data.AUTOTUNE).bucket_by_sequence_length(
      element_length_func=lambda inputs, _: tf.shape(inputs[features.TOKEN_IDS_KEY])[0],
      bucket_boundaries=list(boundaries),
      bucket_batch_sizes=[batch_size] * (len(boundaries) + 1))


def wordpiece_vocabulary_size(tf_transform_output: tft.TFTransformOutput) -> int:
  path = os.path.join(tf_transform_output.transform_savedmodel_dir, 'assets',
                      features.WORDPIECE_VOCABULARY_NAME)
  with tf.io.gfile.GFile(path) as f:
    return sum(1 for _ in f)


def label_names(tf_transform_output: tft.TFTransformOutput) -> List[str]:
  return [name.decode('utf-8')
          for name in tf_transform_output.vocabulary_by_name(features.LABEL_VOCABULARY_NAME)]


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  """TFX Trainer entry point: trains under the configured strategy and exports for serving."""
  custom_config = fn_args.custom_config or {}
  model_settings = from_custom_config(ModelSettings, custom_config.get('model'))
  training = from_custom_config(TrainingSettings, custom_config.get('training'))
  keras.utils.set_random_seed(training.seed)

  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  classes = label_names(tf_transform_output)
  max_seq_length = tf_transform_output.transformed_feature_spec()[features.TOKEN_IDS_KEY].shape[0]

  strategy = strategy_lib.create_strategy(training.distribution_strategy, training.tpu_address)
  global_batch_size = training.batch_size * strategy.num_replicas_in_sync
  train_dataset = make_dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output,
                               global_batch_size, shuffle=True, settings=training)
  eval_dataset = make_dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output,
                              global_batch_size, shuffle=False, settings=training)
  # Training length is set by `epochs` (and early stopping), not TrainArgs.num_steps. A known
  # epoch length lets Keras show progress and the schedule span the whole run.
  steps_per_epoch = int(train_dataset.reduce(0, lambda n, _: n + 1))
  train_dataset = train_dataset.apply(tf.data.experimental.assert_cardinality(steps_per_epoch))
  logging.info('Training %d steps per epoch (global batch %d on %d replicas), classes %s.',
               steps_per_epoch, global_batch_size, strategy.num_replicas_in_sync, classes)

  with strategy.scope():
    model = build_model(wordpiece_vocabulary_size(tf_transform_output), max_seq_length,
                        len(classes), model_settings)
    compile_model(model, steps_per_epoch * training.epochs, training)

  callbacks = [keras.callbacks.EarlyStopping(
      monitor='val_accuracy', mode='max', patience=training.early_stopping_patience,
      restore_best_weights=True)]
  if strategy_lib.is_chief():
    callbacks.append(keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir,
                                                 update_freq='epoch'))
  model.fit(train_dataset, epochs=training.epochs, validation_data=eval_dataset,
            validation_steps=fn_args.eval_steps or None, callbacks=callbacks, verbose=2)

  if strategy_lib.is_chief():
    export.export_serving_model(model, tf_transform_output, classes, fn_args.serving_model_dir)
