"""Chooses the tf.distribute strategy the Trainer builds and trains the model under."""

import json
import os

import tensorflow as tf

STRATEGIES = ('auto', 'default', 'mirrored', 'multi_worker', 'tpu')


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
  """The strategy for configuration value `name` on this machine."""
  resolved = resolve_strategy_name(
      name, tpu_address=tpu_address,
      num_gpus=len(tf.config.list_logical_devices('GPU')),
      tf_config=os.environ.get('TF_CONFIG', ''))
  if resolved == 'tpu':
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or None)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  if resolved == 'multi_worker':
    return tf.distribute.MultiWorkerMirroredStrategy()
  if resolved == 'mirrored':
    return tf.distribute.MirroredStrategy()
  return tf.distribute.get_strategy()


def is_chief() -> bool:
  """True in the process that writes the SavedModel and TensorBoard logs."""
  tf_config = json.loads(os.environ.get('TF_CONFIG', '') or '{}')
  task = tf_config.get('task', {})
  if not task:
    return True
  has_chief = 'chief' in tf_config.get('cluster', {})
  return task.get('type') == 'chief' or (not has_chief and task.get('type') == 'worker'
                                         and task.get('index', 0) == 0)
