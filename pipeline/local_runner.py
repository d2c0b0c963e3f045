"""Runs the pipeline locally: LocalDagRunner, sqlite ml-metadata, Beam DirectRunner.

    python -m pipeline.local_runner [--verbose]   # the whole pipeline, then a summary of the run

By default the output is one line per component and the Trainer's epochs; --verbose (or
TEXT_CLASSIFIER_VERBOSE=1) brings back all TF, Beam and TFX logging.

The TFX CLI executes this file too: `tfx pipeline create --engine local --pipeline_path
pipeline/local_runner.py` records the pipeline main() hands to LocalDagRunner.run (run() is patched
out then), and `tfx run create --engine local --pipeline_name text_classifier` runs the file.
"""

import os
import sys
import time

# The TFX CLI loads this file by path: make the repository importable as it is for `-m`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline import progress  # pylint: disable=wrong-import-position

VERBOSE = '--verbose' in sys.argv[1:] or os.environ.get('TEXT_CLASSIFIER_VERBOSE') == '1'
if not VERBOSE:
  progress.silence_before_imports()

from tfx import v1 as tfx  # pylint: disable=wrong-import-position

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
  if not VERBOSE:
    progress.quiet_logging(total_components=len(PIPELINE.components))
  started = time.time()
  tfx.orchestration.LocalDagRunner().run(PIPELINE)
  # `tfx pipeline create` executes this file with run() patched out: nothing ran, nothing to say.
  if run_summary.ran_since(CONFIG, started):
    print(run_summary.format_summary(run_summary.latest_run(CONFIG), time.time() - started))


if __name__ == '__main__':
  main()
