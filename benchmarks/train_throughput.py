"""Training throughput of the default model on this machine: the Trainer's real input pipeline
against the same model fed from memory, and what jit_compile, steps_per_execution, length
bucketing and mixed precision do to it.

    python -m benchmarks.train_throughput [--settings NAME ...] [--warmup-steps 16] [--steps 96]
        [--repeats 2]

Reads the transformed examples of the last local run (`make run`) through `make_dataset`, as run_fn
does (default strategy, one replica). For each setting it trains fresh models on the same batches,
fed by the real input pipeline and from memory (the upper bound: no input cost), alternately, and
keeps the best run of each. The first steps of each run (tracing, XLA compilation, filling the
shuffle buffer) are not timed.

Columns: examples/s of the input pipeline alone (an epoch, best of the repeats too); examples/s
and tokens/s (padding excluded) of training fed by it and fed from memory, and their ratio; the
matmul FLOP/s of the real run and its share of this CPU's peak (`peak_flops`); the distinct batch
shapes in an epoch (XLA compiles the training step for each).
"""

import argparse
import dataclasses
import math
import os
import tempfile
import time
from typing import List, Tuple

import keras
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from benchmarks.tune_model import fn_args_for
from models import classifier, data, features, optimization
from models.settings import ModelSettings, TrainingSettings, resolve_training
from pipeline.config import PipelineConfig

# name -> TrainingSettings overrides, relative to the defaults in pipeline/config.py.
SETTINGS = {
    'default': {},
    'no_length_buckets': {'length_buckets': ()},
    'steps_per_execution_1': {'steps_per_execution': 1},
    'jit_compile': {'jit_compile': True},
    'jit_compile_no_buckets': {'jit_compile': True, 'length_buckets': ()},
    'mixed_bfloat16': {'mixed_precision': 'mixed_bfloat16'},
}


@dataclasses.dataclass
class Batches:
  """What a run's timed steps process."""
  examples: int
  tokens: int  # real tokens, padding excluded
  flops: float  # matmul FLOPs of forward and backward passes, padding included


@dataclasses.dataclass(frozen=True)
class EncoderShape:
  width: int
  intermediate_dim: int
  num_layers: int


def encoder_shape(model: keras.Model, settings: ModelSettings) -> EncoderShape:
  if settings.architecture == 'pretrained':
    backbone = model.get_layer(features.BACKBONE_LAYER)
    return EncoderShape(backbone.hidden_dim, backbone.intermediate_dim, backbone.num_layers)
  return EncoderShape(settings.embedding_dim, settings.intermediate_dim, settings.num_layers)


def training_flops(batch_size: int, length: int, shape: EncoderShape, num_classes: int) -> float:
  """Matmul FLOPs of one training step on a [batch_size, length] batch: the backward pass costs
  about twice the forward one. Per token and layer: Q, K, V and output projections (8 d^2), the
  feed-forward network (4 d ff) and attention scores and weighted sums (4 length d)."""
  d, ff = shape.width, shape.intermediate_dim
  per_token = shape.num_layers * (8 * d * d + 4 * d * ff + 4 * length * d)
  forward = batch_size * (length * per_token + 2 * d * num_classes)
  return 3.0 * forward


def describe(batches: List, shape: EncoderShape, num_classes: int) -> Batches:
  return Batches(
      examples=sum(int(labels.shape[0]) for _, labels in batches),
      tokens=sum(int(tf.math.count_nonzero(inputs[features.TOKEN_IDS_KEY]))
                 for inputs, _ in batches),
      flops=sum(training_flops(*inputs[features.TOKEN_IDS_KEY].shape, shape, num_classes)
                for inputs, _ in batches))


class StepTimer(keras.callbacks.Callback):
  """Seconds from the end of step `warmup_steps` to the end of step `last_step`."""

  def __init__(self, warmup_steps: int, last_step: int):
    super().__init__()
    self._warmup_steps = warmup_steps
    self._last_step = last_step
    self._started = 0.0
    self.seconds = None

  def on_train_batch_end(self, batch, logs=None):
    # With steps_per_execution, `batch` is the last step of each execution.
    if batch == self._warmup_steps - 1:
      self._started = time.perf_counter()
    if batch == self._last_step:
      self.seconds = time.perf_counter() - self._started


def new_model(steps: int, vocab_size: int, max_seq_length: int, num_classes: int,
              model_settings: ModelSettings, training: TrainingSettings) -> keras.Model:
  keras.utils.set_random_seed(training.seed)
  with optimization.dtype_policy(training.mixed_precision):
    model = classifier.build_classifier(model_settings, vocab_size, max_seq_length, num_classes)
    optimization.compile_model(model, steps, training)
  return model


def train_seconds(dataset: tf.data.Dataset, steps: int, warmup_steps: int,
                  model: keras.Model) -> float:
  """Seconds of the timed steps of `model`, fresh, trained on `dataset`."""
  timer = StepTimer(warmup_steps, steps - 1)
  model.fit(dataset.apply(tf.data.experimental.assert_cardinality(steps)), epochs=1,
            callbacks=[timer], verbose=0, shuffle=False)
  return timer.seconds


def input_dataset(fn_args: tfx.components.FnArgs, tf_transform_output: tft.TFTransformOutput,
                  training: TrainingSettings) -> tf.data.Dataset:
  """The Trainer's training input: an epoch of shuffled batches."""
  return data.make_dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output,
                                training.batch_size, for_training=True, settings=training)


def input_pass(dataset: tf.data.Dataset) -> Tuple[float, int]:
  """(examples/s, distinct [batch, length] shapes) of one pass of the input pipeline on its own
  (an epoch: XLA compiles the training step once per shape)."""
  started = time.perf_counter()
  examples, shapes = 0, set()
  for inputs, labels in dataset:
    examples += int(labels.shape[0])
    shapes.add(tuple(inputs[features.TOKEN_IDS_KEY].shape))
  return examples / (time.perf_counter() - started), len(shapes)


def matmul_flops_per_second(n: int = 2048, repeats: int = 20) -> float:
  """Float32 FLOP/s of a large matmul: what TensorFlow attains on this CPU at best."""
  a = tf.random.normal([n, n])
  matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, a)))
  matmul().numpy()
  started = time.perf_counter()
  for _ in range(repeats):
    matmul().numpy()
  return 2 * n ** 3 * repeats / (time.perf_counter() - started)


def peak_flops(matmul_flops: float) -> Tuple[float, str]:
  """(FLOP/s, how it was estimated): cores × float32 FLOP per cycle × clock, read off this machine.

  FLOP per cycle assumes two FMA pipes of the widest vector unit the CPU reports (2 × lanes × 2
  FLOP), true of recent server cores. /proc/cpuinfo gives the nominal clock only; cores that boost
  run faster, so when a large matmul beats the nominal figure, the matmul is the estimate instead.
  """
  flags, megahertz = set(), 0.0
  with open('/proc/cpuinfo') as f:
    for line in f:
      key, _, value = line.partition(':')
      if key.strip() == 'flags' and not flags:
        flags = set(value.split())
      elif key.strip() == 'cpu MHz' and not megahertz:
        megahertz = float(value)
  lanes, unit = ((16, 'AVX-512') if 'avx512f' in flags else (8, 'AVX2') if 'avx2' in flags
                 else (4, 'SSE'))
  flop_per_cycle = 2 * lanes * 2  # 2 FMA pipes × lanes × 2 FLOP (multiply and add)
  cores = len(os.sched_getaffinity(0))
  nominal = cores * flop_per_cycle * megahertz * 1e6
  note = (f'{cores} cores x {flop_per_cycle} float32 FLOP/cycle (2 {unit} FMA pipes) x '
          f'{megahertz / 1000:.2f} GHz nominal = {nominal / 1e9:.0f} GFLOP/s')
  if matmul_flops > nominal:
    return matmul_flops, (f'{note}; a matmul beats that (the cores boost), so the estimate is '
                          f'the matmul\'s {matmul_flops / 1e9:.0f} GFLOP/s')
  return nominal, note


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--settings', nargs='+', default=list(SETTINGS), choices=list(SETTINGS))
  parser.add_argument('--warmup-steps', type=int, default=16,
                      help='untimed steps first (a multiple of steps_per_execution)')
  parser.add_argument('--steps', type=int, default=96,
                      help='timed steps (a multiple of steps_per_execution)')
  parser.add_argument('--repeats', type=int, default=2, help='runs per feed; the best counts')
  args = parser.parse_args()
  steps = args.warmup_steps + args.steps
  config = PipelineConfig.from_env()
  base_training = resolve_training(config.model, config.training)
  # The global seed is part of the input pipeline's shuffle seed: fixed, every pass over the
  # input yields the same batches.
  keras.utils.set_random_seed(base_training.seed)
  with tempfile.TemporaryDirectory() as work_dir:
    fn_args = fn_args_for(config, config.model, config.training, work_dir)
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  vocab_size = len(data.vocabulary(tf_transform_output))
  num_classes = len(data.label_names(tf_transform_output))
  max_seq_length = data.max_seq_length(tf_transform_output)

  matmul_flops = matmul_flops_per_second()
  peak, peak_note = peak_flops(matmul_flops)
  print(f'Peak estimate: {peak_note}; a 2048x2048 float32 matmul attains '
        f'{matmul_flops / 1e9:.0f} GFLOP/s ({matmul_flops / peak:.0%}).')
  print(f'Data: {os.path.dirname(fn_args.train_files[0])}; model {config.model}; batch '
        f'{base_training.batch_size}; {args.warmup_steps} untimed + {args.steps} timed steps '
        f'per run, best of {args.repeats}.')
  print(f"{'setting':<24} {'input ex/s':>10} {'ex/s':>7} {'tokens/s':>8} {'memory ex/s':>11} "
        f"{'memory tok/s':>12} {'ratio':>6} {'GFLOP/s':>7} {'of peak':>7} {'shapes':>6}",
        flush=True)
  for name in args.settings:
    training = dataclasses.replace(base_training, **SETTINGS[name])

    def fresh_model(training=training):
      return new_model(steps, vocab_size, max_seq_length, num_classes, config.model, training)

    input_rate, shapes = max(input_pass(input_dataset(fn_args, tf_transform_output, training))
                             for _ in range(args.repeats))
    memory = input_dataset(fn_args, tf_transform_output, training).take(steps).cache()
    batches = describe(list(memory)[args.warmup_steps:],
                       encoder_shape(fresh_model(), config.model), num_classes)
    # Best of alternating runs: other work on the machine can only slow a run down.
    seconds = {'real': math.inf, 'memory': math.inf}
    for _ in range(args.repeats):
      real = input_dataset(fn_args, tf_transform_output, training).take(steps)
      for feed, dataset in (('real', real), ('memory', memory)):
        seconds[feed] = min(seconds[feed], train_seconds(dataset, steps, args.warmup_steps,
                                                         fresh_model()))
    achieved_flops = batches.flops / seconds['real']
    print(f"{name:<24} {input_rate:>10.0f} {batches.examples / seconds['real']:>7.0f} "
          f"{batches.tokens / seconds['real']:>8.0f} {batches.examples / seconds['memory']:>11.0f} "
          f"{batches.tokens / seconds['memory']:>12.0f} "
          f"{seconds['memory'] / seconds['real']:>6.2f} {achieved_flops / 1e9:>7.1f} "
          f"{achieved_flops / peak:>7.1%} {shapes:>6}", flush=True)
  print('ratio: training fed by the input pipeline / fed from memory (goal >= 0.95). shapes: '
        'distinct batch shapes in an epoch.')


if __name__ == '__main__':
  main()
