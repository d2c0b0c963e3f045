"""What the Trainer reports, from a short real run of run_fn: TensorBoard scalars, weight histograms
and hyperparameters in the model_run directory, and one progress line per epoch."""

import contextlib
import io
import os
import re
import warnings

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
