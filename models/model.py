"""The KerasNLP Transformer classifier and the TFX Trainer entry point `run_fn`."""

import contextlib
import os
import time
from typing import Dict, List, Tuple, Union

import keras
import keras_nlp
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tensorboard.plugins.hparams import api as hparams_api
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from models import export, features, strategy as strategy_lib, warm_start
from pipeline.config import (ModelSettings, TrainingSettings, as_custom_config, from_custom_config,
                             with_overrides)


def build_model(vocab_size: int, max_seq_length: int, num_classes: int,
                settings: ModelSettings) -> keras.Model:
  """Token ids [batch, max_seq_length] (0 = padding) -> class probabilities [batch, classes]."""
  # The length is left open: batches may be trimmed to their longest member (length buckets).
  token_ids = keras.Input(shape=(None,), dtype='int64', name=features.TOKEN_IDS_KEY)
  # Padding (id 0) is masked explicitly in attention and in the pooling.
  padding_mask = keras.ops.not_equal(token_ids, 0)
  x = keras_nlp.layers.TokenAndPositionEmbedding(
      vocabulary_size=vocab_size, sequence_length=max_seq_length,
      embedding_dim=settings.embedding_dim, name=features.EMBEDDING_LAYER)(token_ids)
  x = keras.layers.Dropout(settings.dropout)(x)
  for _ in range(settings.num_layers):
    x = keras_nlp.layers.TransformerEncoder(
        intermediate_dim=settings.intermediate_dim, num_heads=settings.num_heads,
        dropout=settings.dropout)(x, padding_mask=padding_mask)
  x = pool(x, padding_mask, settings.pooling)
  x = keras.layers.Dropout(settings.dropout)(x)
  # float32 under mixed precision too: a softmax in 16 bits loses small probabilities.
  probabilities = keras.layers.Dense(num_classes, activation='softmax', dtype='float32',
                                     name=features.PROBABILITIES_KEY)(x)
  return keras.Model({features.TOKEN_IDS_KEY: token_ids}, probabilities)


@contextlib.contextmanager
def dtype_policy(mixed_precision: str):
  """Layers built inside compute in `mixed_precision` ('' = float32); the process-wide policy is
  restored afterwards (layers keep the policy they were built with)."""
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(mixed_precision or 'float32')
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)


def pool(x, padding_mask, pooling: str):
  """[batch, length, width] -> [batch, width] (or 2 × width for mean_max), ignoring padding."""
  if pooling not in ('mean', 'max', 'mean_max'):
    raise ValueError(f'Unknown pooling {pooling!r}; expected mean, max or mean_max.')
  pooled = []
  if pooling in ('mean', 'mean_max'):
    pooled.append(keras.layers.GlobalAveragePooling1D()(x, mask=padding_mask))
  if pooling in ('max', 'mean_max'):
    # Padding positions get the lowest value, so they never win the max.
    masked = keras.ops.where(keras.ops.expand_dims(padding_mask, -1), x, -1e9)
    pooled.append(keras.ops.max(masked, axis=1))
  return pooled[0] if len(pooled) == 1 else keras.layers.Concatenate()(pooled)


class SparseCrossentropy(keras.losses.Loss):
  """Cross-entropy of class probabilities against integer labels, with label smoothing (which
  Keras' SparseCategoricalCrossentropy lacks)."""

  def __init__(self, label_smoothing: float = 0.0, name: str = 'sparse_crossentropy'):
    super().__init__(name=name)
    self.label_smoothing = label_smoothing

  def call(self, labels, probabilities):
    one_hot = keras.ops.one_hot(keras.ops.reshape(keras.ops.cast(labels, 'int32'), [-1]),
                                keras.ops.shape(probabilities)[-1])
    return keras.losses.categorical_crossentropy(one_hot, probabilities,
                                                 label_smoothing=self.label_smoothing)


def compile_model(model: keras.Model, total_steps: int, settings: TrainingSettings,
                  num_replicas: int = 1) -> None:
  """AdamW with linear warm-up then cosine decay over `total_steps`, the peak learning rate scaled
  for `num_replicas`. Under mixed_float16 Keras adds loss scaling. Call it in the scope of the
  training strategy."""
  warmup_steps = int(total_steps * settings.warmup_fraction)
  schedule = keras.optimizers.schedules.CosineDecay(
      initial_learning_rate=0.0, decay_steps=max(total_steps - warmup_steps, 1),
      warmup_target=strategy_lib.scaled_learning_rate(
          settings.learning_rate, num_replicas, settings.learning_rate_scaling),
      warmup_steps=warmup_steps)
  model.compile(
      optimizer=keras.optimizers.AdamW(learning_rate=schedule,
                                       weight_decay=settings.weight_decay),
      loss=SparseCrossentropy(settings.label_smoothing),
      metrics=[keras.metrics.SparseCategoricalAccuracy(name='accuracy')],
      jit_compile=settings.jit_compile,
      steps_per_execution=strategy_lib.supported_steps_per_execution(
          settings.steps_per_execution))


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
    dataset = dataset.map(lambda inputs, label: keep_share(inputs, label, holdout_percent, held_out),
                          num_parallel_calls=tf.data.AUTOTUNE)
  if settings.length_buckets:
    dataset = bucket_by_length(dataset, batch_size, settings.length_buckets)
  # With several workers, each reads every file (in the same seeded order) and keeps its share of
  # every global batch: all run the same, counted, number of steps. Sharding by file (the default
  # policy's first choice) would give them unequal numbers of batches.
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


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

  Training length is set by epochs (and early stopping), not TrainArgs.num_steps. Known epoch
  lengths let the schedule span the whole run, Keras show progress, and evaluation end without
  running out of data."""
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


def wordpiece_vocabulary(tf_transform_output: tft.TFTransformOutput) -> List[str]:
  """The tokens, in token-id order."""
  return warm_start.read_vocabulary(os.path.join(
      tf_transform_output.transform_savedmodel_dir, 'assets', features.WORDPIECE_VOCABULARY_NAME))


def max_seq_length(tf_transform_output: tft.TFTransformOutput) -> int:
  """The token ids' padded length, as Transform wrote it."""
  return tf_transform_output.transformed_feature_spec()[features.TOKEN_IDS_KEY].shape[0]


def label_names(tf_transform_output: tft.TFTransformOutput) -> List[str]:
  return [name.decode('utf-8')
          for name in tf_transform_output.vocabulary_by_name(features.LABEL_VOCABULARY_NAME)]


class Throughput(keras.callbacks.Callback):
  """Adds `examples_per_second` of each epoch's training steps (validation excluded; the first
  epoch includes tracing) to the epoch logs, so the progress line and TensorBoard show it."""

  def __init__(self, examples_per_epoch: int):
    super().__init__()
    self._examples_per_epoch = examples_per_epoch
    self._started = 0.0
    self._training_seconds = None

  def on_epoch_begin(self, epoch, logs=None):
    self._started = time.perf_counter()
    self._training_seconds = None

  def on_test_begin(self, logs=None):
    # Validation runs at the end of the epoch, after all its training steps.
    if self._training_seconds is None:
      self._training_seconds = time.perf_counter() - self._started

  def on_epoch_end(self, epoch, logs=None):
    seconds = self._training_seconds or time.perf_counter() - self._started
    logs['examples_per_second'] = self._examples_per_epoch / seconds


HParamValue = Union[bool, int, float, str]


def write_hparams(log_dir: str, hparams: Dict[str, HParamValue]) -> None:
  """Records the run's hyperparameters for TensorBoard's HParams dashboard; its metrics are the
  epoch scalars the TensorBoard callback writes to the train/ and validation/ runs below."""
  with tf.summary.create_file_writer(log_dir).as_default():
    hparams_api.hparams(hparams)


def run_hparams(model_settings: ModelSettings, training: TrainingSettings,
                num_replicas: int) -> Dict[str, HParamValue]:
  """The settings of a run, flattened, plus what follows from the strategy."""
  values = {f'{group}.{name}': value
            for group, settings in (('model', model_settings), ('training', training))
            for name, value in as_custom_config(settings).items()}
  # HParams values are bool, int, float or str.
  values = {name: value if isinstance(value, (bool, int, float, str)) else str(value)
            for name, value in values.items()}
  values.update({
      'replicas': num_replicas,
      'global_batch_size': training.batch_size * num_replicas,
      'peak_learning_rate': strategy_lib.scaled_learning_rate(
          training.learning_rate, num_replicas, training.learning_rate_scaling),
  })
  return values


def tuned_settings(hyperparameters: Dict, model_settings: ModelSettings,
                   training: TrainingSettings) -> Tuple[ModelSettings, TrainingSettings]:
  """The settings with the values of KerasTuner hyperparameters (a HyperParameters config, or
  its values) named 'model.<field>' / 'training.<field>'."""
  values = hyperparameters.get('values', hyperparameters)
  overrides = {'model': {}, 'training': {}}
  for name, value in values.items():
    group, _, field = name.partition('.')
    overrides[group][field] = value
  logging.info('Tuned settings: %s', values)
  return (with_overrides(model_settings, overrides['model']),
          with_overrides(training, overrides['training']))


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  """TFX Trainer entry point: trains under the configured strategy and exports for serving."""
  custom_config = fn_args.custom_config or {}
  model_settings = from_custom_config(ModelSettings, custom_config.get('model'))
  training = from_custom_config(TrainingSettings, custom_config.get('training'))
  if fn_args.hyperparameters:  # the Tuner's best trial
    model_settings, training = tuned_settings(fn_args.hyperparameters, model_settings, training)
  # First: MultiWorkerMirroredStrategy must be created before TensorFlow runs anything.
  strategy = strategy_lib.create_strategy(training.distribution_strategy, training.tpu_address)
  keras.utils.set_random_seed(training.seed)

  tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  classes = label_names(tf_transform_output)
  sequence_length = max_seq_length(tf_transform_output)

  num_replicas = strategy.num_replicas_in_sync
  global_batch_size = training.batch_size * num_replicas
  train_dataset = make_dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output,
                               global_batch_size, for_training=True, settings=training)
  eval_dataset = make_dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output,
                              global_batch_size, for_training=False, settings=training)
  train_dataset, steps_per_epoch, examples_per_epoch = with_known_length(train_dataset)
  eval_dataset, _, _ = with_known_length(eval_dataset)
  logging.info('Training %d steps per epoch (global batch %d on %d replicas), classes %s.',
               steps_per_epoch, global_batch_size, num_replicas, classes)

  with strategy.scope(), dtype_policy(training.mixed_precision):
    vocabulary = wordpiece_vocabulary(tf_transform_output)
    model = build_model(len(vocabulary), sequence_length, len(classes), model_settings)
    if fn_args.base_model:
      warm_start.initialize_from_base_model(model, fn_args.base_model, vocabulary)
    compile_model(model, steps_per_epoch * training.epochs, training, num_replicas)

  # Throughput first: the callbacks after it see its entry in the epoch logs.
  callbacks = [
      Throughput(examples_per_epoch),
      keras.callbacks.EarlyStopping(monitor='val_accuracy', mode='max',
                                    patience=training.early_stopping_patience,
                                    restore_best_weights=True)]
  if strategy_lib.is_chief():
    write_hparams(fn_args.model_run_dir, run_hparams(model_settings, training, num_replicas))
    # Scalars (loss, accuracy, learning rate, examples/s) and weight histograms, every epoch.
    callbacks.append(keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir,
                                                 histogram_freq=1, update_freq='epoch'))
  class_weight = (balanced_class_weights(train_dataset, len(classes))
                  if training.balance_classes else None)
  if class_weight:
    logging.info('Class weights: %s', class_weight)
  # The dataset shuffles itself (fit's `shuffle` only applies to arrays).
  model.fit(train_dataset, epochs=training.epochs, validation_data=eval_dataset,
            validation_steps=fn_args.eval_steps or None, callbacks=callbacks, verbose=2,
            shuffle=False, class_weight=class_weight)

  # Only the chief exports: the export reads the model's variables, which are mirrored (the same
  # on every worker), so unlike tf.keras' model.save it runs no collective ops that would need the
  # other workers to save a copy too.
  if strategy_lib.is_chief():
    export.export_serving_model(model, tf_transform_output, classes, fn_args.serving_model_dir)
  strategy_lib.wait_for_other_workers(strategy)
