"""Training at scale, for real on CPU: the Trainer's run_fn under MirroredStrategy over two logical
CPUs and under MultiWorkerMirroredStrategy over two local worker processes, each exporting a model
that serves raw text; the learning rate scaled with the replicas; the mixed-precision policy."""

import json
import os
import re
import subprocess
import sys
import time

import keras
import keras_hub
import numpy as np
import portpicker
import pytest
import tensorflow as tf

from models import classifier, features, optimization, strategy as strategy_lib
from models.settings import REPO_ROOT, TrainingSettings, as_custom_config, resolve_training
from tests.helpers import (MAX_SEQ_LENGTH, TEXTS, TINY_MODEL, read_hparams,
                           write_transformed_examples)

# Per process, and for the whole cluster: a worker that waits for a peer forever fails the test.
TIMEOUT_SECONDS = 300


@pytest.fixture(scope='module')
def inputs(tiny_transform, tmp_path_factory):
  """(transform output dir, transformed examples dir) for tests/run_trainer.py."""
  transformed, output = tiny_transform
  examples_dir = str(tmp_path_factory.mktemp('distributed') / 'examples')
  write_transformed_examples(transformed, examples_dir)
  return os.path.dirname(output.transform_savedmodel_dir), examples_dir


def trainer_command(inputs, work_dir, training: TrainingSettings, *options: str):
  custom_config = {'model': as_custom_config(TINY_MODEL), 'training': as_custom_config(training)}
  return [sys.executable, '-m', 'tests.run_trainer', *inputs, str(work_dir),
          '--custom-config', json.dumps(custom_config), *options]


def assert_serves_raw_text(model_dir) -> None:
  outputs = tf.saved_model.load(str(model_dir)).signatures[features.SERVING_SIGNATURE](
      text=tf.constant(TEXTS))
  probabilities = outputs[features.PROBABILITIES_KEY].numpy()
  assert probabilities.dtype == np.float32 and probabilities.shape == (len(TEXTS), 2)
  np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)
  assert {label.decode() for label in outputs[features.PREDICTED_LABEL_KEY].numpy()} <= {
      'neg', 'pos'}


@pytest.mark.slow
def test_mirrored_strategy_trains_on_two_replicas_in_mixed_precision_and_exports(inputs, tmp_path):
  training = resolve_training(TINY_MODEL, TrainingSettings(
      epochs=1, batch_size=8, distribution_strategy='mirrored', mixed_precision='mixed_bfloat16'))
  result = subprocess.run(trainer_command(inputs, tmp_path, training, '--logical-cpus', '2'),
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
  assert result.returncode == 0, result.stderr[-5000:]

  hparams = read_hparams(str(tmp_path / 'logs'))
  assert hparams['replicas'] == 2
  assert hparams['global_batch_size'] == 2 * training.batch_size
  assert hparams['peak_learning_rate'] == pytest.approx(2 * training.learning_rate)  # linear
  assert hparams['training.mixed_precision'] == 'mixed_bfloat16'
  assert_serves_raw_text(tmp_path / 'serving')


def epoch_metrics(log: str) -> str:
  """The metrics of the last epoch's progress line, without its timings."""
  line = [line for line in log.splitlines() if re.match(r'\d+/\d+ - ', line)][-1]
  return re.sub(r'.*?(?= - accuracy:)| - examples_per_second: [\d.]+', '', line)


@pytest.mark.slow
def test_multi_worker_strategy_trains_two_workers_and_the_chief_exports(inputs, tmp_path):
  # TF_CONFIG lists two workers: `auto` picks MultiWorkerMirroredStrategy, worker 0 is the chief.
  cluster = {'worker': [f'localhost:{portpicker.pick_unused_port()}' for _ in range(2)]}
  training = resolve_training(TINY_MODEL, TrainingSettings(epochs=1, batch_size=8))
  workers, logs = [], []
  for index in range(2):
    tf_config = {'cluster': cluster, 'task': {'type': 'worker', 'index': index}}
    logs.append(tmp_path / f'worker{index}.log')
    with open(logs[-1], 'w', encoding='utf-8') as log:
      workers.append(subprocess.Popen(
          trainer_command(inputs, tmp_path / f'worker{index}', training), cwd=REPO_ROOT,
          env=dict(os.environ, TF_CONFIG=json.dumps(tf_config)), stdout=log,
          stderr=subprocess.STDOUT))
  deadline = time.monotonic() + TIMEOUT_SECONDS
  try:
    return_codes = [worker.wait(timeout=max(deadline - time.monotonic(), 1))
                    for worker in workers]
  finally:
    for worker in workers:
      worker.kill()  # a no-op for workers that have exited
  outputs = [log.read_text(encoding='utf-8') for log in logs]
  assert return_codes == [0, 0], '\n'.join(output[-3000:] for output in outputs)

  # Both trained the same model in lockstep: gradients and metrics are all-reduced.
  assert epoch_metrics(outputs[0]) == epoch_metrics(outputs[1])
  hparams = read_hparams(str(tmp_path / 'worker0' / 'logs'))
  assert hparams['replicas'] == 2
  assert hparams['global_batch_size'] == 2 * training.batch_size
  assert_serves_raw_text(tmp_path / 'worker0' / 'serving')
  # Only the chief writes the model and the TensorBoard logs.
  assert not (tmp_path / 'worker1').exists()


@pytest.mark.parametrize('scaling, expected', [('linear', 4e-3), ('sqrt', 2e-3), ('none', 1e-3)])
def test_peak_learning_rate_scales_with_replicas(scaling, expected):
  assert strategy_lib.scaled_learning_rate(1e-3, 4, scaling) == pytest.approx(expected)


def test_unknown_learning_rate_scaling_is_a_clear_error():
  with pytest.raises(ValueError, match='Unknown learning rate scaling'):
    strategy_lib.scaled_learning_rate(1e-3, 2, 'quadratic')


def test_mirrored_strategy_trains_one_step_per_execution():
  with tf.distribute.MirroredStrategy(['/cpu:0']).scope():
    assert strategy_lib.supported_steps_per_execution(8) == 1
  assert strategy_lib.supported_steps_per_execution(8) == 8


def test_mixed_precision_computes_in_16_bits_with_float32_weights_and_output():
  with optimization.dtype_policy('mixed_bfloat16'):
    model = classifier.build_classifier(TINY_MODEL, 50, MAX_SEQ_LENGTH, num_classes=2)
  assert keras.mixed_precision.global_policy().name == 'float32'  # restored
  encoder = next(layer for layer in model.layers
                 if isinstance(layer, keras_hub.layers.TransformerEncoder))
  assert encoder.compute_dtype == 'bfloat16' and encoder.variable_dtype == 'float32'
  probabilities = model({features.TOKEN_IDS_KEY: np.ones((2, MAX_SEQ_LENGTH), 'int64')})
  assert probabilities.dtype == 'float32'
