"""Helpers shared by the benchmarks: finding a local run's artifacts, reading validation data."""

import csv
import glob
import os
from typing import List, Tuple

from pipeline.config import PipelineConfig


def latest_artifact_dir(config: PipelineConfig, component: str, output: str) -> str:
  """The newest artifact directory of `component`'s `output` under the local pipeline root."""
  paths = glob.glob(os.path.join(config.pipeline_root, component, output, '*'))
  if not paths:
    raise SystemExit(f'No {component} {output} under {config.pipeline_root}: run `make run` first.')
  return max(paths, key=lambda p: int(os.path.basename(p)))


def read_labelled_tsv(path: str, text_column: str,
                      label_column: str) -> Tuple[List[str], List[str]]:
  with open(path, encoding='utf-8', newline='') as f:
    rows = list(csv.DictReader(f, delimiter='\t', quoting=csv.QUOTE_NONE))
  return [row[text_column] for row in rows], [row[label_column] for row in rows]
