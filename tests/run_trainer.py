"""Runs the Trainer's `run_fn` on small transformed data, outside TFX but with a real FnArgs.

    python -m tests.run_trainer TRANSFORM_OUTPUT EXAMPLES_DIR WORK_DIR [--logical-cpus N]
        [--custom-config JSON]

The distributed tests start it as a fresh process: logical CPU devices must be configured before
TensorFlow initialises its devices, and every MultiWorkerMirroredStrategy worker is a process of
its own (TF_CONFIG in its environment). The model lands in WORK_DIR/serving, the TensorBoard logs
in WORK_DIR/logs.
"""

import argparse
import json
import os
from typing import Iterable, Mapping

import numpy as np
import tensorflow as tf
from tfx import v1 as tfx
from tfx.components.util import tfxio_utils
from tfx.types import standard_artifacts

from models import features, model

SPLITS = ('train', 'eval')


def write_transformed_examples(rows: Iterable[Mapping[str, np.ndarray]], examples_dir: str) -> None:
  """Transformed rows as gzipped tf.Example files in Transform's layout (both splits get them)."""
  examples = [tf.train.Example(features=tf.train.Features(feature={
      features.TOKEN_IDS_KEY: tf.train.Feature(
          int64_list=tf.train.Int64List(value=row[features.TOKEN_IDS_KEY])),
      features.LABEL_ID_KEY: tf.train.Feature(
          int64_list=tf.train.Int64List(value=[row[features.LABEL_ID_KEY]])),
      features.LENGTH_BUCKET_KEY: tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[row[features.LENGTH_BUCKET_KEY]])),
  })).SerializeToString() for row in rows]
  for split in SPLITS:
    os.makedirs(os.path.join(examples_dir, f'Split-{split}'))
    path = os.path.join(examples_dir, f'Split-{split}', 'transformed_examples-00000-of-00001.gz')
    with tf.io.TFRecordWriter(path, options='GZIP') as writer:
      for example in examples:
        writer.write(example)


def fn_args_for(transform_output: str, examples_dir: str, work_dir: str,
                custom_config: dict) -> tfx.components.FnArgs:
  """What the TFX Trainer hands `run_fn` for these examples."""
  examples = standard_artifacts.Examples()
  examples.uri = examples_dir
  return tfx.components.FnArgs(
      train_files=[os.path.join(examples_dir, 'Split-train', '*')],
      eval_files=[os.path.join(examples_dir, 'Split-eval', '*')],
      transform_graph_path=transform_output,
      data_accessor=tfx.components.DataAccessor(
          tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact([examples], []),
          record_batch_factory=None, data_view_decode_fn=None),
      serving_model_dir=os.path.join(work_dir, 'serving'),
      model_run_dir=os.path.join(work_dir, 'logs'),
      custom_config=custom_config)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('transform_output')
  parser.add_argument('examples_dir')
  parser.add_argument('work_dir')
  parser.add_argument('--logical-cpus', type=int, default=0,
                      help='split the CPU into this many logical devices (MirroredStrategy)')
  parser.add_argument('--custom-config', default='{}', help="the Trainer's custom_config, JSON")
  args = parser.parse_args()
  if args.logical_cpus:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices('CPU')[0],
        [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)
  model.run_fn(fn_args_for(args.transform_output, args.examples_dir, args.work_dir,
                           json.loads(args.custom_config)))


if __name__ == '__main__':
  main()
