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

import tensorflow as tf

from models import trainer


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
  trainer.run_fn(trainer.local_fn_args(args.transform_output, args.examples_dir, args.work_dir,
                                       json.loads(args.custom_config)))


if __name__ == '__main__':
  main()
