"""The real TFX CLI on pipeline/local_runner.py, on a slice of SST-2: `tfx pipeline create` and
`tfx run create`; then, after a model setting changed, `tfx pipeline update` and another run,
which is served from cache up to Transform and trains again."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from ml_metadata.proto import metadata_store_pb2

from models.settings import REPO_ROOT
from pipeline.config import PipelineConfig
from tests.helpers import CACHED_ON_RERUN, latest_executions, small_config

TFX = os.path.join(os.path.dirname(sys.executable), 'tfx')
PIPELINE_FILE = os.path.join('pipeline', 'local_runner.py')
UP_TO_TRANSFORM = CACHED_ON_RERUN[:CACHED_ON_RERUN.index('Transform') + 1]

# Whole pipeline runs: minutes each (`pytest -m 'not slow'` skips them).
pytestmark = pytest.mark.slow


def environment(config: PipelineConfig, home: str) -> dict:
  """What makes the pipeline file build `config`: its paths and settings, and the CLI's home."""
  overrides = {name: dataclasses.asdict(getattr(config, name))
               for name in ('preprocessing', 'model', 'training', 'evaluation')}
  return {**os.environ, 'HOME': home, 'LOCAL_HOME': os.path.join(home, 'tfx_local'),
          'TEXT_CLASSIFIER_DATA_ROOT': config.ingestion.data_root,
          'TEXT_CLASSIFIER_OUTPUT_DIR': config.output_dir,
          'TEXT_CLASSIFIER_SERVING_DIR': config.serving_model_dir,
          'TEXT_CLASSIFIER_OVERRIDES': json.dumps(overrides)}


def tfx_cli(env: dict, *args: str) -> str:
  """Runs `tfx ARGS --engine local` from the repository root, as the README shows."""
  result = subprocess.run([TFX, *args, '--engine', 'local'], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stdout + result.stderr
  return result.stdout


def test_a_model_change_retrains_from_cached_inputs(sst2_slice, tmp_path):
  config = small_config(sst2_slice, str(tmp_path))
  home = str(tmp_path / 'home')
  env = environment(config, home)
  assert 'created successfully' in tfx_cli(env, 'pipeline', 'create',
                                            '--pipeline_path', PIPELINE_FILE)
  assert 'Pushed to: ' in tfx_cli(env, 'run', 'create', '--pipeline_name', config.pipeline_name)
  first = latest_executions(config)

  env = environment(
      dataclasses.replace(config, model=dataclasses.replace(config.model, intermediate_dim=32)),
      home)
  assert 'updated successfully' in tfx_cli(env, 'pipeline', 'update',
                                            '--pipeline_path', PIPELINE_FILE)
  tfx_cli(env, 'run', 'create', '--pipeline_name', config.pipeline_name)
  second = latest_executions(config)

  for node_id in UP_TO_TRANSFORM:
    assert second[node_id].last_known_state == metadata_store_pb2.Execution.CACHED, node_id
  for node_id in ('Trainer', 'Evaluator', 'Pusher'):
    assert second[node_id].last_known_state == metadata_store_pb2.Execution.COMPLETE, node_id
    assert second[node_id].id != first[node_id].id, node_id
