"""The TFX Trainer entry point `run_fn`, and the set-up it shares with the Tuner's `tuner_fn`:
settings, strategy, Transform output, datasets and a compiled model."""

import dataclasses
import logging as std_logging
import os
import time
from typing import Callable, Dict, List, Optional, Tuple, Union

import keras
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tensorboard.plugins.hparams import api as hparams_api
from tfx import v1 as tfx
from tfx.components.util import tfxio_utils
from tfx.types import standard_artifacts

from models import classifier, data, export, optimization, strategy as strategy_lib, warm_start
from models.settings import (CLASS_DISPLAY_NAMES_KEY, ModelSettings, TrainingSettings,
                             as_custom_config, from_custom_config, resolve_training,
                             tuned_settings)


@dataclasses.dataclass
class TrainingSetup:
  """What training needs, read once from the Trainer's (or Tuner's) FnArgs."""
  fn_args: tfx.components.FnArgs
  model_settings: ModelSettings
  training: TrainingSettings  # resolved: no field left at None
  strategy: tf.distribute.Strategy
  transform_output: tft.TFTransformOutput
  classes: List[str]
  vocabulary: List[str]
  max_seq_length: int

  @property
  def num_replicas(self) -> int:
    return self.strategy.num_replicas_in_sync

  @property
  def global_batch_size(self) -> int:
    return self.training.batch_size * self.num_replicas

  def dataset(self, files: List[str], for_training: bool, holdout_percent: int = 0,
              held_out: bool = False) -> Tuple[tf.data.Dataset, int, int]:
    """(batches of ({token_ids}, label_id), batches, examples) over `files`, one pass."""
    return data.with_known_length(data.make_dataset(
        files, self.fn_args.data_accessor, self.transform_output, self.global_batch_size,
        for_training=for_training, settings=self.training, holdout_percent=holdout_percent,
        held_out=held_out))

  def compiled_model(self, model_settings: ModelSettings, training: TrainingSettings,
                     total_steps: int, base_model: Optional[str] = None,
                     loss: Optional[keras.losses.Loss] = None,
                     metrics: Optional[list] = None) -> keras.Model:
    """A new classifier in the strategy's scope, from `base_model`'s weights if given, compiled
    for `total_steps` optimizer steps (with `loss` and `metrics`, or compile_model's)."""
    with self.strategy.scope(), optimization.dtype_policy(training.mixed_precision):
      model = classifier.build_classifier(model_settings, len(self.vocabulary),
                                          self.max_seq_length, len(self.classes))
      if base_model:
        warm_start.initialize_from_base_model(
            model, classifier.token_embeddings(model, model_settings), base_model,
            self.vocabulary)
      optimization.compile_model(model, total_steps, training, self.num_replicas, loss, metrics)
    return model


def prepare(fn_args: tfx.components.FnArgs) -> TrainingSetup:
  custom_config = fn_args.custom_config or {}
  model_settings = from_custom_config(ModelSettings, custom_config.get('model'))
  training = from_custom_config(TrainingSettings, custom_config.get('training'))
  if fn_args.hyperparameters:  # the Tuner's best trial
    logging.info('Tuned settings: %s', fn_args.hyperparameters)
    model_settings, training = tuned_settings(fn_args.hyperparameters, model_settings, training)
  training = resolve_training(model_settings, training)
  # First: MultiWorkerMirroredStrategy must be created before TensorFlow runs anything.
  strategy = strategy_lib.create_strategy(training.distribution_strategy, training.tpu_address)
  keras.utils.set_random_seed(training.seed)
  transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  return TrainingSetup(
      fn_args=fn_args, model_settings=model_settings, training=training, strategy=strategy,
      transform_output=transform_output,
      # What the served `label` says: the dataset's display names when it has them.
      classes=custom_config.get(CLASS_DISPLAY_NAMES_KEY) or data.label_names(transform_output),
      vocabulary=data.vocabulary(transform_output),
      max_seq_length=data.max_seq_length(transform_output))


def evaluation_rounds(steps_per_epoch: int, training: TrainingSettings) -> Tuple[int, int]:
  """(steps per evaluation round, rounds): `epochs` passes over the data, cut to `max_steps`,
  evaluated every `steps_per_evaluation` steps (or once an epoch); whole rounds only, so the steps
  trained never exceed the budget."""
  total = steps_per_epoch * training.epochs
  if training.max_steps:
    total = min(total, training.max_steps)
  per_round = min(training.steps_per_evaluation or steps_per_epoch, total)
  return per_round, max(total // per_round, 1)


def in_rounds(train_dataset: tf.data.Dataset, steps_per_epoch: int,
              training: TrainingSettings) -> Tuple[tf.data.Dataset, int, int]:
  """(the training data for `fit`, steps per round, rounds) of `evaluation_rounds`: repeated when
  rounds do not follow passes over the data."""
  steps_per_round, rounds = evaluation_rounds(steps_per_epoch, training)
  if steps_per_round != steps_per_epoch:
    train_dataset = train_dataset.repeat()
  return train_dataset, steps_per_round, rounds


class Throughput(keras.callbacks.Callback):
  """Adds `examples_per_second` of each round's training steps (validation excluded; the first
  round includes tracing) to the epoch logs, so the progress line and TensorBoard show it."""

  def __init__(self, examples_per_round: float):
    super().__init__()
    self._examples_per_round = examples_per_round
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
    logs['examples_per_second'] = self._examples_per_round / seconds


def optimizer_step(model: keras.Model) -> int:
  """The optimizer steps taken so far (`int()` of the variable fails under tf.distribute, where
  it is a MirroredVariable)."""
  return int(model.optimizer.iterations.numpy())


class StepProgress(keras.callbacks.Callback):
  """Logs the optimizer step reached, of `total_steps`, at most every `every_seconds`, to a
  `*.progress` logger: a quiet local run repeats its latest message in the Trainer's still-running
  lines (pipeline/progress.py), between Keras' lines, which come once a round."""

  def __init__(self, total_steps: int, every_seconds: float = 10.0):
    super().__init__()
    self._total_steps, self._every_seconds = total_steps, every_seconds
    self._next_report = 0.0
    self._logger = std_logging.getLogger(__name__ + '.progress')

  def on_train_batch_end(self, batch, logs=None):
    if time.monotonic() >= self._next_report:
      self._logger.info('step %d of %d', optimizer_step(self.model), self._total_steps)
      self._next_report = time.monotonic() + self._every_seconds


# Points of the training curve over a whole run, however many steps it has.
TRAINING_CURVE_POINTS = 50


class StepScalars(keras.callbacks.Callback):
  """Writes the training metrics every `every` optimizer steps to the TensorBoard run `log_dir`
  as step_<metric>, at the optimizer step, as Keras' TensorBoard callback writes the validation
  metrics after each round (evaluation_<metric>_vs_iterations). That callback's batch-level
  summaries (`update_freq`) would count calls of the training function instead, each
  `steps_per_execution` steps. Each value is the mean over the steps since the previous point:
  Keras logs running means, which start again each round."""

  def __init__(self, log_dir: str, every: int):
    super().__init__()
    self._writer = tf.summary.create_file_writer(log_dir)
    self._every = every
    self._round_start = 0
    self._previous = 0  # the optimizer step of the previous point, or of the round's start
    self._previous_means = {}  # the round's running means then
    self._last_means = {}  # the round's running means after its latest step

  def on_epoch_begin(self, epoch, logs=None):
    self._round_start = self._previous = optimizer_step(self.model)
    self._previous_means = {}

  def on_train_batch_end(self, batch, logs=None):
    step = optimizer_step(self.model)
    self._last_means = dict(logs)
    if step // self._every != self._previous // self._every:
      self._write(step)

  def on_epoch_end(self, epoch, logs=None):
    step = optimizer_step(self.model)
    if step > self._previous:  # the round's last steps, before its running means start again
      self._write(step)

  def _write(self, step: int) -> None:
    done, before = step - self._round_start, self._previous - self._round_start
    with self._writer.as_default(step):
      for name, mean in self._last_means.items():
        tf.summary.scalar(f'step_{name}', (done * mean - before * self._previous_means.get(
            name, 0.0)) / (done - before))
    self._previous, self._previous_means = step, self._last_means

  def on_train_end(self, logs=None):
    self._writer.close()


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


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  """TFX Trainer entry point: trains under the configured strategy and exports for serving."""
  setup = prepare(fn_args)
  train_dataset, steps_per_epoch, examples_per_epoch = setup.dataset(fn_args.train_files,
                                                                     for_training=True)
  eval_dataset, _, _ = setup.dataset(fn_args.eval_files, for_training=False)
  fit_and_export(setup, train_dataset, steps_per_epoch, examples_per_epoch, eval_dataset,
                 base_model=fn_args.base_model)


def fit_and_export(setup: TrainingSetup, train_dataset: tf.data.Dataset, steps_per_epoch: int,
                   examples_per_epoch: int, eval_dataset: tf.data.Dataset,
                   base_model: Optional[str] = None,
                   initialize: Optional[Callable[[keras.Model], None]] = None,
                   loss: Optional[keras.losses.Loss] = None, metrics: Optional[list] = None,
                   extra_hparams: Optional[Dict[str, HParamValue]] = None) -> None:
  """Trains a new classifier (setup's settings; from `base_model`'s weights if given, then
  `initialize`d if given; with `loss` and `metrics`, or compile_model's) in evaluation rounds with
  early stopping on val_accuracy, logs to TensorBoard, and exports it for serving."""
  fn_args, training = setup.fn_args, setup.training
  train_dataset, steps_per_round, rounds = in_rounds(train_dataset, steps_per_epoch, training)
  logging.info('Training %d rounds of %d steps (global batch %d on %d replicas), classes %s.',
               rounds, steps_per_round, setup.global_batch_size, setup.num_replicas,
               setup.classes)
  model = setup.compiled_model(setup.model_settings, training, steps_per_round * rounds,
                               base_model=base_model, loss=loss, metrics=metrics)
  if initialize:
    initialize(model)
  if strategy_lib.is_chief():
    export.check_room(fn_args.serving_model_dir, export.export_bytes_needed(model))

  # Throughput first: the callbacks after it see its entry in the epoch logs.
  callbacks = [
      Throughput(examples_per_epoch * steps_per_round / steps_per_epoch),
      StepProgress(steps_per_round * rounds),
      keras.callbacks.EarlyStopping(monitor='val_accuracy', mode='max',
                                    patience=training.early_stopping_patience,
                                    restore_best_weights=True)]
  if strategy_lib.is_chief():
    write_hparams(fn_args.model_run_dir,
                  {**run_hparams(setup.model_settings, training, setup.num_replicas),
                   **(extra_hparams or {})})
    # Scalars (loss, accuracy, learning rate, examples/s) and weight histograms, every round;
    # the training metrics every few steps too.
    callbacks += [
        keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, histogram_freq=1,
                                    update_freq='epoch'),
        StepScalars(os.path.join(fn_args.model_run_dir, 'train'),
                    max(1, steps_per_round * rounds // TRAINING_CURVE_POINTS))]
  class_weight = (data.balanced_class_weights(train_dataset.take(steps_per_epoch),
                                              len(setup.classes))
                  if training.balance_classes else None)
  if class_weight:
    logging.info('Class weights: %s', class_weight)
  # The dataset shuffles itself (fit's `shuffle` only applies to arrays).
  model.fit(train_dataset, epochs=rounds, steps_per_epoch=steps_per_round,
            validation_data=eval_dataset, validation_steps=fn_args.eval_steps or None,
            callbacks=callbacks, verbose=2, shuffle=False, class_weight=class_weight)

  # Only the chief exports: the export reads the model's variables, which are mirrored (the same
  # on every worker), so unlike tf.keras' model.save it runs no collective ops that would need the
  # other workers to save a copy too.
  if strategy_lib.is_chief():
    export.export_serving_model(model, setup.transform_output, setup.classes,
                                fn_args.serving_model_dir)
  strategy_lib.wait_for_other_workers(strategy=setup.strategy)


def local_fn_args(transform_graph_path: str, examples_dir: str, work_dir: str,
                  custom_config: dict, base_model: Optional[str] = None) -> tfx.components.FnArgs:
  """What the TFX Trainer hands `run_fn` for the examples in `examples_dir` (Split-train,
  Split-eval), to train outside a pipeline (benchmarks, tests). The model lands in
  work_dir/serving, the TensorBoard logs in work_dir/logs."""
  examples = standard_artifacts.Examples()
  examples.uri = examples_dir
  return tfx.components.FnArgs(
      train_files=[os.path.join(examples_dir, 'Split-train', '*')],
      eval_files=[os.path.join(examples_dir, 'Split-eval', '*')],
      transform_graph_path=transform_graph_path,
      data_accessor=tfx.components.DataAccessor(
          tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact([examples], []),
          record_batch_factory=None, data_view_decode_fn=None),
      serving_model_dir=os.path.join(work_dir, 'serving'),
      model_run_dir=os.path.join(work_dir, 'logs'),
      base_model=base_model,
      custom_config=custom_config)
