"""What a person wants to know after a run, read back from ml-metadata and the artifacts."""

import dataclasses
import json
import os
from typing import Dict, Optional

import tensorflow_model_analysis as tfma
from ml_metadata.metadata_store import metadata_store
from tfx import v1 as tfx

from components.cleaning.component import CleaningReport
from components.cleaning.transforms import REPORT_FILE
from pipeline.config import PipelineConfig


@dataclasses.dataclass
class RunSummary:
  cleaning: Optional[dict]
  metrics: Dict[str, Dict[str, float]]  # slice name -> metric name -> value
  blessed: Optional[bool]
  pushed_to: Optional[str]
  model_run_dir: Optional[str]


def _latest(store: metadata_store.MetadataStore, type_name: str):
  artifacts = store.get_artifacts_by_type(type_name)
  return max(artifacts, key=lambda a: a.id) if artifacts else None


def _int_property(artifact, name: str) -> Optional[int]:
  if artifact is None or name not in artifact.custom_properties:
    return None
  return artifact.custom_properties[name].int_value


def _slice_name(slice_key) -> str:
  return tfma.slicer.stringify_slice_key(slice_key) if slice_key else 'overall'


def load_metrics(evaluation_uri: str) -> Dict[str, Dict[str, float]]:
  result = tfma.load_eval_result(evaluation_uri)
  metrics = {}
  for slice_key, by_output in result.slicing_metrics:
    values = {}
    for sub_key, by_name in by_output.get('', {}).items():
      for name, value in by_name.items():
        if 'doubleValue' in value:  # a number, or the string 'NaN'
          values[f'{name}[{sub_key}]' if sub_key else name] = float(value['doubleValue'])
    metrics[_slice_name(slice_key)] = values
  return metrics


def _store(config: PipelineConfig) -> metadata_store.MetadataStore:
  return metadata_store.MetadataStore(
      tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))


def ran_since(config: PipelineConfig, start_seconds: float) -> bool:
  """Whether any component execution (cached ones too) was recorded after `start_seconds`."""
  if not os.path.exists(config.metadata_path):
    return False
  return any(e.create_time_since_epoch >= start_seconds * 1000
             for e in _store(config).get_executions())


def latest_run(config: PipelineConfig) -> RunSummary:
  store = _store(config)
  report = _latest(store, CleaningReport.TYPE_NAME)
  cleaning = None
  if report is not None:
    with open(os.path.join(report.uri, REPORT_FILE)) as f:
      cleaning = json.load(f)
  evaluation = _latest(store, tfx.types.standard_artifacts.ModelEvaluation.TYPE_NAME)
  blessing = _latest(store, tfx.types.standard_artifacts.ModelBlessing.TYPE_NAME)
  pushed = _latest(store, tfx.types.standard_artifacts.PushedModel.TYPE_NAME)
  model_run = _latest(store, tfx.types.standard_artifacts.ModelRun.TYPE_NAME)
  pushed_to = None
  if _int_property(pushed, 'pushed'):
    pushed_to = pushed.custom_properties['pushed_destination'].string_value
  blessed = _int_property(blessing, 'blessed')
  return RunSummary(
      cleaning=cleaning,
      metrics=load_metrics(evaluation.uri) if evaluation is not None else {},
      blessed=None if blessed is None else bool(blessed),
      pushed_to=pushed_to,
      model_run_dir=model_run.uri if model_run is not None else None)


def format_summary(summary: RunSummary, seconds: float) -> str:
  lines = ['', f'Pipeline finished in {seconds / 60:.1f} min.']
  if summary.cleaning:
    c = summary.cleaning
    lines.append(f"Data: read {c['read']} rows, kept {c['kept']}, rejected {c['rejected'] or 0}.")
  for slice_name, values in sorted(summary.metrics.items(),
                                        key=lambda kv: (kv[0] != 'overall', kv[0])):
    shown = ', '.join(f'{name} {value:.4f}' for name, value in sorted(values.items())
                      if name != 'example_count')
    count = values.get('example_count')
    lines.append(f'Eval [{slice_name}]' + (f' n={count:.0f}' if count else '') + f': {shown}')
  lines.append(f'Blessed: {summary.blessed}')
  lines.append(f'Pushed to: {summary.pushed_to or "not pushed"}')
  if summary.model_run_dir:
    lines.append(f'TensorBoard: tensorboard --logdir {summary.model_run_dir}')
  return '\n'.join(lines)
