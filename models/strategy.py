"""How training is spread over devices: the tf.distribute strategy, the learning rate that goes with
its number of replicas, and which process writes the outputs."""

import json
import math
import os
from typing import get_args

import tensorflow as tf
from absl import logging

from models import settings

STRATEGIES = get_args(settings.Strategy)
LEARNING_RATE_SCALINGS = get_args(settings.LearningRateScaling)


def resolve_strategy_name(name: str, tpu_address: str = '', num_gpus: int = 0,
                          tf_config: str = '') -> str:
  """Maps `auto` to a concrete strategy name from what the process can see.

  `auto`: a TPU if one is configured, several workers if TF_CONFIG describes a cluster,
  MirroredStrategy over the GPUs if there are several, else the default (one device) strategy.
  """
  if name not in STRATEGIES:
    raise ValueError(f'Unknown distribution strategy {name!r}; expected one of {STRATEGIES}.')
  if name != 'auto':
    return name
  if tpu_address:
    return 'tpu'
  if _cluster_size(tf_config) > 1:
    return 'multi_worker'
  if num_gpus > 1:
    return 'mirrored'
  return 'default'


def _cluster_size(tf_config: str) -> int:
  cluster = json.loads(tf_config).get('cluster', {}) if tf_config else {}
  return sum(len(tasks) for role, tasks in cluster.items() if role in ('chief', 'worker'))


def create_strategy(name: str, tpu_address: str = '') -> tf.distribute.Strategy:
  """The strategy for configuration value `name` on this machine.

  Call it before TensorFlow runs anything in the process: MultiWorkerMirroredStrategy configures
  collective ops, which is only possible at program startup. That is also why GPUs are counted as
  physical devices (listing logical devices would start the runtime).
  """
  resolved = resolve_strategy_name(
      name, tpu_address=tpu_address,
      num_gpus=len(tf.config.list_physical_devices('GPU')),
      tf_config=os.environ.get('TF_CONFIG', ''))
  if resolved == 'tpu':
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or None)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  if resolved == 'multi_worker':
    return _KerasMultiWorkerMirroredStrategy()
  if resolved == 'mirrored':
    return tf.distribute.MirroredStrategy()  # all GPUs; without GPUs, all logical CPUs
  return tf.distribute.get_strategy()


class _KerasMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
  """MultiWorkerMirroredStrategy whose `reduce` takes what Keras 3's `fit` hands it.

  Keras 3 (3.15 included) reduces a whole (features, label) batch at the start of fit/evaluate, to
  learn its shapes, and scalar step results along axis 0; with several workers `reduce` accepts
  neither (keras-team/keras#20329). This reduces each tensor of a structure (the workers hold equal
  shares of a global batch, so the shapes agree), and scalars across replicas only.
  """

  def reduce(self, reduce_op, value, axis):
    reduce_tensor = super().reduce

    def reduce_one(tensor):
      rank = self.experimental_local_results(tensor)[0].shape.rank
      return reduce_tensor(reduce_op, tensor, axis=axis if rank else None)

    return tf.nest.map_structure(reduce_one, value)


def scaled_learning_rate(learning_rate: float, num_replicas: int, scaling: str) -> float:
  """The peak learning rate for `num_replicas` replicas, given the one for a single replica.

  Each replica takes `batch_size` examples, so the global batch grows with the replicas. `linear`
  keeps the update per example (Goyal et al. 2017; the schedule's warm-up keeps the first steps
  stable), `sqrt` keeps the gradient noise of Adam-type optimisers (Malladi et al. 2022).
  """
  if scaling not in LEARNING_RATE_SCALINGS:
    raise ValueError(f'Unknown learning rate scaling {scaling!r}; '
                     f'expected one of {LEARNING_RATE_SCALINGS}.')
  factor = {'linear': num_replicas, 'sqrt': math.sqrt(num_replicas), 'none': 1}[scaling]
  return learning_rate * factor


def is_chief() -> bool:
  """True in the process that writes the SavedModel and TensorBoard logs."""
  tf_config = json.loads(os.environ.get('TF_CONFIG', '') or '{}')
  task = tf_config.get('task', {})
  if not task:
    return True
  has_chief = 'chief' in tf_config.get('cluster', {})
  return task.get('type') == 'chief' or (not has_chief and task.get('type') == 'worker'
                                         and task.get('index', 0) == 0)


def wait_for_other_workers(strategy: tf.distribute.Strategy) -> None:
  """Returns once every worker has called it (an all-reduce of a constant). The workers call it
  after the chief's export: one that exits earlier is reported as failed by the cluster's
  coordination service, which aborts the collectives of those still running."""
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    @tf.function(autograph=False)
    def all_reduce():
      return strategy.reduce('SUM', strategy.run(tf.constant, args=(1,)), axis=None)

    all_reduce()


def supported_steps_per_execution(requested: int) -> int:
  """`requested`, or 1 under the (multi-worker) MirroredStrategy in scope: there Keras 3.15's
  multi-step training function fails (a placeholder inside its loop is left unfed)."""
  strategy = tf.distribute.get_strategy()
  if requested > 1 and isinstance(strategy, (tf.distribute.MirroredStrategy,
                                             tf.distribute.MultiWorkerMirroredStrategy)):
    logging.warning('steps_per_execution=%d is not supported under %s by this Keras; using 1.',
                    requested, type(strategy).__name__)
    return 1
  return requested
