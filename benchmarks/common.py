"""Helpers shared by the benchmarks: finding a local run's artifacts, reading validation data,
scoring an exported model on raw text."""

import csv
import glob
import os
from typing import List, Sequence, Tuple

import numpy as np

from models.latency import probabilities_of
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


def eval_accuracy(serve, texts: List[str], labels: List[str], label_names: Sequence[str]) -> float:
  """Accuracy of the most probable class on labelled texts; `labels` are the file's, class ids
  their positions in `label_names` (the served `label` is a display name)."""
  class_ids = {name: class_id for class_id, name in enumerate(label_names)}
  predicted = probabilities_of(serve, texts).argmax(-1)
  return float(np.mean(predicted == np.array([class_ids[label] for label in labels])))
