"""The local runner's command line, and one run at a time per pipeline root."""

import os
import subprocess
import sys

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from models.settings import REPO_ROOT
from pipeline import local_runner


def run_runner(tmp_path, *args):
  # Input files of its own, so that the runner gets past its data check on any machine without
  # fetching SST-2 (pipeline/sst2_data.py).
  data = tmp_path / 'data'
  data.mkdir(exist_ok=True)
  for name in ('train.tsv', 'validation.tsv'):
    (data / name).write_text('sentence\tlabel\n')
  environment = dict(os.environ, TEXT_CLASSIFIER_OUTPUT_DIR=str(tmp_path / 'out'),
                     TEXT_CLASSIFIER_SERVING_DIR=str(tmp_path / 'serving'),
                     TEXT_CLASSIFIER_DATA_ROOT=str(data))
  return subprocess.run([sys.executable, '-m', 'pipeline.local_runner', *args], cwd=REPO_ROOT,
                        env=environment, capture_output=True, text=True, timeout=300)


def test_help_prints_usage_and_runs_nothing(tmp_path):
  result = run_runner(tmp_path, '--help')
  assert result.returncode == 0 and '--verbose' in result.stdout and '--dataset' in result.stdout
  assert not (tmp_path / 'out').exists() and not (tmp_path / 'serving').exists()


def test_an_unknown_flag_is_refused_before_anything_runs(tmp_path):
  result = run_runner(tmp_path, '--epochs=3')
  assert result.returncode == 2 and 'unrecognized arguments: --epochs=3' in result.stderr
  assert not (tmp_path / 'out').exists()


def test_a_second_run_on_the_same_pipeline_root_is_refused(tmp_path):
  pipeline_root = tmp_path / 'out' / 'pipeline_root' / 'sst2'
  with local_runner.one_run_at_a_time(str(pipeline_root)):
    result = run_runner(tmp_path)
  assert result.returncode != 0
  assert 'Another run of this pipeline is in progress' in result.stderr
  assert f'process {os.getpid()}' in result.stderr  # names the run that holds the root
  assert not (tmp_path / 'out' / 'metadata').exists()  # it did not start


def test_the_lock_goes_with_the_process_that_held_it(tmp_path):
  # A run killed while it held the root leaves no stale lock.
  holder = subprocess.Popen(
      [sys.executable, '-c', 'import sys, time; from pipeline import local_runner\n'
       'with local_runner.one_run_at_a_time(sys.argv[1]):\n  print("held", flush=True)\n'
       '  time.sleep(600)', str(tmp_path)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == 'held'
  with pytest.raises(SystemExit, match=f'process {holder.pid}'):
    with local_runner.one_run_at_a_time(str(tmp_path)):
      pass
  holder.kill()
  holder.wait()
  with local_runner.one_run_at_a_time(str(tmp_path)):
    pass


def test_executions_a_killed_run_left_running_are_marked_on_the_next_start(tmp_path):
  metadata_path = str(tmp_path / 'metadata.sqlite')
  store = metadata_store.MetadataStore(
      metadata.sqlite_metadata_connection_config(metadata_path))
  type_id = store.put_execution_type(metadata_store_pb2.ExecutionType(name='tfx.Trainer'))
  states = (metadata_store_pb2.Execution.RUNNING, metadata_store_pb2.Execution.COMPLETE)
  running_id, complete_id = store.put_executions(
      [metadata_store_pb2.Execution(type_id=type_id, last_known_state=state) for state in states])

  assert local_runner.mark_interrupted_executions(metadata_path, 'run-2') == [
      f'Trainer (execution {running_id})']
  running, complete = store.get_executions_by_id([running_id, complete_id])
  assert running.last_known_state == metadata_store_pb2.Execution.CANCELED
  assert 'run-2' in running.custom_properties[local_runner.INTERRUPTED_PROPERTY].string_value
  assert complete.last_known_state == metadata_store_pb2.Execution.COMPLETE
  assert local_runner.mark_interrupted_executions(metadata_path, 'run-3') == []


def test_no_store_yet_means_nothing_to_mark(tmp_path):
  assert local_runner.mark_interrupted_executions(str(tmp_path / 'metadata.sqlite'), 'r') == []
  assert not (tmp_path / 'metadata.sqlite').exists()
