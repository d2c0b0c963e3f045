"""Runs the pipeline locally: LocalDagRunner, sqlite ml-metadata, Beam DirectRunner.

    python -m pipeline.local_runner [--dataset FILE] [--verbose]   # the whole pipeline, then a
                                                                   # summary of the run

Every setting and the input files are checked before anything runs: a setting that is not
allowed, or a missing file, is a one-line error (exit code 2). The default dataset's (SST-2)
files are read from, or downloaded into, a cache folder when its data_root has none
(pipeline/sst2_data.py).

By default the output is one line per component, a still-running line every 30 s while one runs
long, and the Trainer's epochs; --verbose (or TEXT_CLASSIFIER_VERBOSE=1) brings back all TF, Beam
and TFX logging.

The TFX CLI executes this file too: `tfx pipeline create --engine local --pipeline_path
pipeline/local_runner.py` records the pipeline main() hands to LocalDagRunner.run (run() is patched
out then), and `tfx run create --engine local --pipeline_name sst2` (the dataset's name) runs the
file.
"""

import argparse
import contextlib
import datetime
import fcntl
import logging
import os
import socket
import sys
import time
from typing import List

# The TFX CLI loads this file by path: make the repository importable as it is for `-m`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline import progress  # pylint: disable=wrong-import-position  # noqa: E402


def build(config):
  """The pipeline for `config`, with its sqlite ml-metadata store."""
  # TFX (and TensorFlow) are imported here, not at the top: quiet runs must set up logging first.
  from tfx import v1 as tfx  # pylint: disable=import-outside-toplevel
  from pipeline.pipeline import create_pipeline  # pylint: disable=import-outside-toplevel
  return create_pipeline(
      config,
      metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
          config.metadata_path))


def runner(run_id: str):
  """A LocalDagRunner that gives its run the id `run_id`: the name of the run's `pipeline_run`
  context in ml-metadata, by which the summary finds this run's executions."""
  # pylint: disable=import-outside-toplevel
  from tfx.dsl.compiler import constants
  from tfx.orchestration.local import local_dag_runner
  from tfx.orchestration.portable import runtime_parameter_utils

  class NamedRunLocalDagRunner(local_dag_runner.LocalDagRunner):
    # LocalDagRunner makes up the run id itself (the time) and does not tell it. Binding it first
    # leaves its own substitution nothing to replace. run() is inherited, so the TFX CLI's patch
    # of LocalDagRunner.run still applies.
    def run_with_ir(self, pipeline, run_options=None):
      runtime_parameter_utils.substitute_runtime_parameter(
          pipeline, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id})
      return super().run_with_ir(pipeline, run_options=run_options)

  return NamedRunLocalDagRunner()


RUN_LOCK_FILE = '.run.lock'


@contextlib.contextmanager
def one_run_at_a_time(pipeline_root: str):
  """Holds an exclusive lock on `pipeline_root` while the block runs; a second run on the same
  root exits at once, naming the process that holds it. Two runs at once would share a baseline
  and race to push. The kernel drops the lock when its process ends, killed too, so a crashed run
  leaves no stale lock behind."""
  os.makedirs(pipeline_root, exist_ok=True)
  with open(os.path.join(pipeline_root, RUN_LOCK_FILE), 'a+', encoding='utf-8') as lock:
    try:
      fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      lock.seek(0)
      raise SystemExit(f'Another run of this pipeline is in progress ({lock.read().strip()}) on '
                       f'{pipeline_root}. Wait for it to end, or give this run another '
                       'TEXT_CLASSIFIER_OUTPUT_DIR.') from None
    lock.truncate(0)
    lock.write(f'process {os.getpid()} on {socket.gethostname()}, started '
               f'{datetime.datetime.now().isoformat(timespec="seconds")}')
    lock.flush()
    yield


INTERRUPTED_PROPERTY = 'text_classifier_interrupted'


def mark_interrupted_executions(metadata_path: str, run_id: str) -> List[str]:
  """Marks CANCELED the executions an earlier run left RUNNING in ml-metadata: it was killed,
  since this run holds the lock. Returns '<node> (execution <id>)' for each."""
  # pylint: disable=import-outside-toplevel
  from ml_metadata.metadata_store import metadata_store
  from ml_metadata.proto import metadata_store_pb2
  from tfx.orchestration import metadata

  if not os.path.exists(metadata_path):  # opening it would create an empty store
    return []
  store = metadata_store.MetadataStore(
      metadata.sqlite_metadata_connection_config(metadata_path))
  running = store.get_executions(list_options=metadata_store.ListOptions(
      filter_query='last_known_state = RUNNING'))
  type_names = {t.id: t.name for t in store.get_execution_types()}
  for execution in running:
    execution.last_known_state = metadata_store_pb2.Execution.CANCELED
    execution.custom_properties[INTERRUPTED_PROPERTY].string_value = (
        f'still RUNNING when run {run_id} started; its run had ended without finishing it')
  if running:
    store.put_executions(running)
  return [f'{type_names[e.type_id].rsplit(".", 1)[-1]} (execution {e.id})' for e in running]


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog='python -m pipeline.local_runner',
      description='Runs the whole pipeline locally (LocalDagRunner, sqlite ml-metadata), then '
                  'prints a summary of the run. Settings: the dataset file, pipeline/config.py '
                  'and the TEXT_CLASSIFIER_* environment variables (see the README).')
  parser.add_argument('--dataset', default=os.environ.get('TEXT_CLASSIFIER_DATASET', ''),
                      metavar='FILE',
                      help='the dataset file (YAML or JSON) describing the data; its name names '
                           'the outputs (or TEXT_CLASSIFIER_DATASET; default: '
                           'pipeline/datasets/sst2.yaml)')
  parser.add_argument('--verbose', action='store_true',
                      default=os.environ.get('TEXT_CLASSIFIER_VERBOSE') == '1',
                      help='show all TF, Beam and TFX logging (or TEXT_CLASSIFIER_VERBOSE=1)')
  return parser.parse_args(argv)


def main(argv=None) -> bool:
  """Runs the pipeline and prints its summary; False when nothing ran (the TFX CLI's
  `pipeline create`, which executes this file in its own process with the run patched out)."""
  args = parse_args(argv)
  if not args.verbose:
    progress.silence_before_imports()
  from pipeline import config as config_lib  # pylint: disable=import-outside-toplevel

  try:  # every setting and input file, now, not when a component reads it minutes later
    config = config_lib.PipelineConfig.from_env(args.dataset)
    config_lib.check_local_files(config)
    config = config_lib.with_local_data(config, args.dataset)  # may download SST-2: last
  except ValueError as error:  # a dataset file, setting or input that describes no usable run
    print(f'error: {error}', file=sys.stderr)
    raise SystemExit(2) from None  # a usage error, as argparse's
  # TensorFlow comes with these: imported after the checks, so a wrong setting fails in a second.
  from pipeline import run_record, run_summary  # pylint: disable=import-outside-toplevel
  with one_run_at_a_time(config.pipeline_root):
    run_id = datetime.datetime.now().isoformat()  # as LocalDagRunner would name it
    interrupted = mark_interrupted_executions(config.metadata_path, run_id)
    if interrupted:
      print(f'An earlier run was interrupted; marked CANCELED: {", ".join(interrupted)}.')
    pipeline = build(config)
    if not args.verbose:
      progress.quiet_logging(total_components=len(pipeline.components))
    started = time.time()
    try:
      runner(run_id).run(pipeline)
    except Exception as error:  # pylint: disable=broad-except
      if args.verbose:
        raise
      # The component's own message says what is wrong; its traceback is TFX's and Beam's.
      raise SystemExit(f'error: {type(error).__name__}: {error}\n(--verbose shows the '
                       'traceback and all logging)') from None
    finally:
      progress.stop_heartbeats()
  # `tfx pipeline create` executes this file with run() patched out: nothing ran, nothing to say.
  summary = run_record.read_run(config, run_id)
  if summary is None:
    return False
  print(run_summary.format_summary(summary, time.time() - started))
  from pipeline import history, report  # pylint: disable=import-outside-toplevel
  path = report.write_report(summary, config.pipeline_name, config.pipeline_root,
                             history.read_history(config))
  print(f'Report: file://{path}')
  return True


if __name__ == '__main__' and main():
  # Left to interpreter shutdown, TensorFlow's graph functions are finalised after its module
  # state is gone and print 'Exception ignored in AtomicFunction.__del__' tracebacks under the
  # summary (4 after a small run, even with a gc.collect() first). The run is complete and its
  # records are in ml-metadata: flush what was said and end without that teardown.
  logging.shutdown()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(0)  # pylint: disable=protected-access
