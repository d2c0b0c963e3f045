"""What the Trainer reports, from a short real run of run_fn: TensorBoard scalars, weight histograms
and hyperparameters in the model_run directory, and one progress line per epoch; and what its
training curve's points are, from a Keras model whose every batch's loss is known."""

import contextlib
import io
import os
import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from models import trainer
from models.settings import TrainingSettings, as_custom_config, resolve_training
from tests.helpers import TINY_MODEL, read_hparams, read_run, write_transformed_examples

TRAINING = resolve_training(TINY_MODEL, TrainingSettings(epochs=2, batch_size=8))


def tags_of_plugin(run: event_accumulator.EventAccumulator, plugin: str):
  return {tag for tag in run.Tags()['tensors']
          if run.SummaryMetadata(tag).plugin_data.plugin_name == plugin}


def values_by_step(run: event_accumulator.EventAccumulator, tag: str):
  return {event.step: tf.make_ndarray(event.tensor_proto) for event in run.Tensors(tag)}


@pytest.fixture(scope='module')
def run(tiny_transform, tmp_path_factory):
  """(TensorBoard log dir, stdout, warning messages) of run_fn on the tiny data, in this process."""
  transformed, output = tiny_transform
  work_dir = str(tmp_path_factory.mktemp('tensorboard'))
  examples_dir = os.path.join(work_dir, 'examples')
  write_transformed_examples(transformed, examples_dir)
  fn_args = trainer.local_fn_args(
      os.path.dirname(output.transform_savedmodel_dir), examples_dir, work_dir,
      {'model': as_custom_config(TINY_MODEL), 'training': as_custom_config(TRAINING)})
  stdout = io.StringIO()
  with contextlib.redirect_stdout(stdout), warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    trainer.run_fn(fn_args)
  return fn_args.model_run_dir, stdout.getvalue(), [str(warning.message) for warning in caught]


def test_scalars_are_written_every_epoch(run):
  log_dir, _, _ = run
  train = read_run(os.path.join(log_dir, 'train'))
  epochs = list(range(TRAINING.epochs))
  for tag in ('epoch_loss', 'epoch_accuracy', 'epoch_learning_rate', 'epoch_examples_per_second'):
    assert tag in tags_of_plugin(train, 'scalars')
    assert sorted(values_by_step(train, tag)) == epochs, tag
  learning_rates = values_by_step(train, 'epoch_learning_rate')
  assert 0 < learning_rates[0] <= TRAINING.learning_rate
  assert learning_rates[1] < learning_rates[0]  # cosine decay
  assert all(value > 0 for value in values_by_step(train, 'epoch_examples_per_second').values())
  validation = read_run(os.path.join(log_dir, 'validation'))
  assert {'epoch_loss', 'epoch_accuracy'} <= tags_of_plugin(validation, 'scalars')


def test_training_metrics_are_written_every_few_steps_with_validation_at_its_steps(run):
  log_dir, _, _ = run
  train = read_run(os.path.join(log_dir, 'train'))
  validation = read_run(os.path.join(log_dir, 'validation'))
  # Keras writes the validation metrics at the optimizer step too, after each round.
  rounds = sorted(values_by_step(validation, 'evaluation_accuracy_vs_iterations'))
  assert rounds == [rounds[0] * (index + 1) for index in range(TRAINING.epochs)]
  for tag in ('step_loss', 'step_accuracy'):
    assert tag in tags_of_plugin(train, 'scalars')
    steps = sorted(values_by_step(train, tag))
    assert len(steps) >= TRAINING.epochs and steps[-1] == rounds[-1], (tag, steps)
  assert all(0 <= value <= 1 for value in values_by_step(train, 'step_accuracy').values())


def test_each_training_point_is_the_mean_over_the_steps_since_the_previous_one(tmp_path):
  """With a learning rate of 0 the weights stay put, so each batch's loss can be computed apart.
  Two steps per call of the training function: points are at optimizer steps all the same."""
  batches, batch_size, every = 8, 4, 4
  rng = np.random.default_rng(0)
  x = rng.normal(size=(batches * batch_size, 3)).astype('float32')
  y = rng.normal(size=(batches * batch_size, 1)).astype('float32')
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
  model.compile(optimizer=keras.optimizers.SGD(0.0), loss='mse', steps_per_execution=2)
  batch_losses = [float(keras.losses.MeanSquaredError()(y[i:i + batch_size],
                                                        model(x[i:i + batch_size])))
                  for i in range(0, len(x), batch_size)]
  model.fit(x, y, batch_size=batch_size, epochs=2, shuffle=False, verbose=0,
            callbacks=[trainer.StepScalars(str(tmp_path), every)])
  logged = values_by_step(read_run(str(tmp_path)), 'step_loss')
  # Steps 4 and 8 in the first round; 12 and 16 in the second, whose running means start again.
  expected = {round_start + end: np.mean(batch_losses[end - every:end])
              for round_start in (0, batches) for end in (every, batches)}
  assert logged.keys() == expected.keys()
  for step, value in logged.items():
    assert float(value) == pytest.approx(expected[step], rel=1e-5), step


def test_a_round_ends_with_a_training_point_at_its_last_step(tmp_path):
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
  model.compile(optimizer='sgd', loss='mse')
  model.fit(np.zeros((32, 3)), np.zeros((32, 1)), batch_size=4, epochs=2, verbose=0,
            callbacks=[trainer.StepScalars(str(tmp_path), every=3)])
  assert sorted(values_by_step(read_run(str(tmp_path)), 'step_loss')) == [3, 6, 8, 9, 12, 15, 16]


def test_the_step_reached_is_logged_for_the_progress_lines(caplog):
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
  model.compile(optimizer='sgd', loss='mse', steps_per_execution=2)
  with caplog.at_level('INFO', logger='models.trainer.progress'):
    model.fit(np.zeros((16, 3)), np.zeros((16, 1)), batch_size=4, epochs=2, verbose=0,
              callbacks=[trainer.StepProgress(total_steps=8, every_seconds=0.0)])
  assert [record.getMessage() for record in caplog.records] == [
      f'step {step} of 8' for step in (2, 4, 6, 8)]


def test_weight_histograms_are_written_every_epoch(run):
  log_dir, _, _ = run
  train = read_run(os.path.join(log_dir, 'train'))
  histograms = tags_of_plugin(train, 'histograms')
  assert 'probabilities/kernel/histogram' in histograms
  assert any(tag.startswith('transformer_layer_0/') for tag in histograms)
  assert sorted(values_by_step(train, 'probabilities/kernel/histogram')) == [0, 1]


def test_hyperparameters_are_recorded(run):
  log_dir, _, _ = run
  hparams = read_hparams(log_dir)
  assert hparams['model.embedding_dim'] == TINY_MODEL.embedding_dim
  assert hparams['training.learning_rate'] == pytest.approx(TRAINING.learning_rate)
  assert hparams['training.length_buckets'] == str(TRAINING.length_buckets)
  assert hparams['training.mixed_precision'] == ''
  assert hparams['replicas'] == 1
  assert hparams['global_batch_size'] == TRAINING.batch_size
  assert hparams['peak_learning_rate'] == pytest.approx(TRAINING.learning_rate)


def test_progress_is_one_line_per_epoch_and_evaluation_does_not_run_out_of_data(run):
  _, stdout, warning_messages = run
  epoch_lines = [line for line in stdout.splitlines() if re.match(r'\d+/\d+ - ', line)]
  assert len(epoch_lines) == TRAINING.epochs
  for line in epoch_lines:
    for name in ('loss', 'accuracy', 'val_loss', 'val_accuracy', 'examples_per_second'):
      assert re.search(rf' - {name}: [\d.]+', line), (name, line)
  assert not [message for message in warning_messages if 'ran out of data' in message]
