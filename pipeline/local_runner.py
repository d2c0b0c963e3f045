"""Runs the pipeline locally: LocalDagRunner, sqlite ml-metadata, Beam DirectRunner.

    python -m pipeline.local_runner            # the whole pipeline, then a summary of the run

The TFX CLI (`tfx pipeline create --engine local --pipeline_path pipeline/local_runner.py`) imports
this file and runs the module-level `PIPELINE` it finds in it.
"""

import os
import sys
import time

from tfx import v1 as tfx

# The TFX CLI loads this file by path: make the repository importable as it is for `-m`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline import run_summary  # pylint: disable=wrong-import-position
from pipeline.config import PipelineConfig  # pylint: disable=wrong-import-position
from pipeline.pipeline import create_pipeline  # pylint: disable=wrong-import-position


def build(config: PipelineConfig) -> tfx.dsl.Pipeline:
  return create_pipeline(
      config,
      metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
          config.metadata_path))


CONFIG = PipelineConfig.from_env()
PIPELINE = build(CONFIG)


def main() -> None:
  started = time.time()
  tfx.orchestration.LocalDagRunner().run(PIPELINE)
  # `tfx pipeline create` executes this file with run() patched out: nothing ran, nothing to say.
  if run_summary.ran_since(CONFIG, started):
    print(run_summary.format_summary(run_summary.latest_run(CONFIG), time.time() - started))


if __name__ == '__main__':
  main()
