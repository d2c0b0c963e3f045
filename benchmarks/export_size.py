"""Size on disk and load time of an exported model: what TF Serving reads and holds per version.

    python -m benchmarks.export_size --model-dir DIR [--loads 3]

Prints the SavedModel's size, its variables' share (variables.data), how many values its
checkpoint stores, and how long `tf.saved_model.load` takes in this process: the first load
(which also pays for TF's start-up) and the fastest of the following ones.
"""

import argparse
import os
import time

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the TF Text ops the exported model uses)

from models import export

OBJECT_GRAPH_KEY = '_CHECKPOINTABLE_OBJECT_GRAPH'  # the checkpoint's own index, not a value


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--model-dir', required=True, help='an exported SavedModel')
  parser.add_argument('--loads', type=int, default=3, help='times to load it (at least 2)')
  args = parser.parse_args()
  variables_dir = os.path.join(args.model_dir, 'variables')
  if not os.path.isfile(os.path.join(args.model_dir, 'saved_model.pb')):
    raise SystemExit(f'error: {args.model_dir} holds no saved_model.pb')
  if args.loads < 2:
    raise SystemExit(f'error: --loads must be at least 2, got {args.loads}')

  data_bytes = sum(os.path.getsize(os.path.join(variables_dir, name))
                   for name in os.listdir(variables_dir) if name.startswith('variables.data'))
  stored = [name for name, _ in tf.train.list_variables(os.path.join(variables_dir, 'variables'))
            if name != OBJECT_GRAPH_KEY]
  seconds = []
  for _ in range(args.loads):
    started = time.perf_counter()
    loaded = tf.saved_model.load(args.model_dir)
    seconds.append(time.perf_counter() - started)
  weights = sum(variable.shape.num_elements() for variable in loaded.variables)
  print(f'Model: {args.model_dir}')
  print(f'size on disk: {export.megabytes_on_disk(args.model_dir):.1f} MB, of which '
        f'variables.data {data_bytes / 1e6:.1f} MB')
  print(f'checkpoint values: {len(stored)}; the model offers {len(loaded.variables)} variables, '
        f'{weights:,} numbers')
  print(f'load time: first {seconds[0]:.2f} s, then best {min(seconds[1:]):.2f} s '
        f'of {args.loads - 1}')


if __name__ == '__main__':
  main()
