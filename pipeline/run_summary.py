"""What a person wants to know after a run, read back from ml-metadata and the artifacts.

A run is one `pipeline_run` context in ml-metadata, named by the run id. The summary reads only the
artifacts that run's executions output (cached executions output the artifacts they reuse), so
other runs in the same store, earlier, later or concurrent, do not leak into it.
"""

import dataclasses
import glob
import json
import os
from typing import Dict, List, Optional

import tensorflow_model_analysis as tfma
from google.protobuf import text_format
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components import atomic_pusher
from components.cleaning.component import CleaningReport
from components.cleaning.transforms import REPORT_FILE, eval_shrinkage_warning
from pipeline.config import PipelineConfig

# The context type TFX's portable runtime (LocalDagRunner) gives each run; its name is the run id.
PIPELINE_RUN_CONTEXT = 'pipeline_run'


@dataclasses.dataclass
class RunSummary:
  run_id: str
  cleaning: Optional[dict]
  metrics: Dict[str, Dict[str, float]]  # slice name -> metric name -> value
  blessed: Optional[bool]
  not_blessed_because: List[str]  # the failed checks, with their values
  pushed_to: Optional[str]
  live_model: Optional[str]  # the newest version under push_destination: what serving loads
  already_live: Optional[str]  # the version that already held this run's model: not pushed again
  model_run_dir: Optional[str]


def _store(config: PipelineConfig) -> Optional[metadata_store.MetadataStore]:
  # Opening a missing sqlite file would create an empty store (and its directories).
  if not os.path.exists(config.metadata_path):
    return None
  return metadata_store.MetadataStore(
      tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))


def _run_context(store: metadata_store.MetadataStore,
                 run_id: Optional[str]) -> Optional[metadata_store_pb2.Context]:
  if run_id is not None:
    return store.get_context_by_type_and_name(PIPELINE_RUN_CONTEXT, run_id)
  runs = store.get_contexts_by_type(PIPELINE_RUN_CONTEXT)
  return max(runs, key=lambda c: c.id) if runs else None


def run_outputs(store: metadata_store.MetadataStore,
                context: metadata_store_pb2.Context) -> Dict[str, metadata_store_pb2.Artifact]:
  """Artifact type name -> the newest artifact of that type the run's executions output."""
  executions = store.get_executions_by_context(context.id)
  events = store.get_events_by_execution_ids([e.id for e in executions])
  # OUTPUT only: a Resolver's picks (the last blessed model) are INTERNAL_OUTPUT events.
  ids = {e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT}
  type_names = {t.id: t.name for t in store.get_artifact_types()}
  return {type_names[a.type_id]: a
          for a in sorted(store.get_artifacts_by_id(list(ids)), key=lambda a: a.id)}


def _int_property(artifact, name: str) -> Optional[int]:
  if artifact is None or name not in artifact.custom_properties:
    return None
  return artifact.custom_properties[name].int_value


def _string_property(artifact, name: str) -> Optional[str]:
  if artifact is None or name not in artifact.custom_properties:
    return None
  return artifact.custom_properties[name].string_value


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


def _metric_name(metric_key) -> str:
  """The metric's name as load_metrics spells it (a diff's too: is_diff is a separate flag)."""
  if not metric_key.HasField('sub_key'):
    return metric_key.name
  return f'{metric_key.name}[{tfma.metrics.SubKey.from_proto(metric_key.sub_key)}]'


def _explain_change(name: str, diff: float, change, candidate: Optional[float]) -> str:
  """A failed check against the last blessed model: `diff` is candidate minus baseline."""
  limits = []
  if change.HasField('absolute'):
    limits.append(f'tolerance {abs(change.absolute.value):.4f}')
  if change.HasField('relative'):
    limits.append(f'relative tolerance {abs(change.relative.value):.4f}')
  gap = f"{abs(diff):.4f} {'below' if diff < 0 else 'above'} the last blessed model's"
  if candidate is None:
    return f"{name} is {gap} ({', '.join(limits)})"
  return f"{name} {candidate:.4f} is {gap} {candidate - diff:.4f} ({', '.join(limits)})"


def explain_failure(failure, candidate_metrics: Dict[str, float]) -> str:
  """One failed threshold of a TFMA ValidationResult, with the metric value and the threshold."""
  name = _metric_name(failure.metric_key)
  threshold = failure.metric_threshold
  if not failure.HasField('metric_value'):  # e.g. 'Metric not found.'
    return f'{name}: {failure.message or "failed"}'
  value = failure.metric_value.double_value.value
  if threshold.HasField('change_threshold'):
    return _explain_change(name, value, threshold.change_threshold, candidate_metrics.get(name))
  bound = threshold.value_threshold
  if bound.HasField('lower_bound') and value < bound.lower_bound.value:
    return f'{name} {value:.4f} < floor {bound.lower_bound.value:.4f}'
  if bound.HasField('upper_bound') and value > bound.upper_bound.value:
    return f'{name} {value:.4f} > ceiling {bound.upper_bound.value:.4f}'
  # NaN compares false with any bound.
  return f'{name} {value:.4f} fails {text_format.MessageToString(threshold, as_one_line=True)}'


def explain_not_blessed(evaluation_uri: str, metrics: Dict[str, Dict[str, float]]) -> List[str]:
  """Why the Evaluator did not bless: the failed checks in its validation result."""
  if not glob.glob(os.path.join(evaluation_uri, tfma.constants.VALIDATIONS_KEY + '*')):
    return [f'no validation result in {evaluation_uri}']
  result = tfma.load_validation_result(evaluation_uri)
  reasons = []
  for per_slice in result.metric_validations_per_slice:
    slice_name = _slice_name(tfma.slicer.deserialize_slice_key(per_slice.slice_key))
    prefix = '' if slice_name == 'overall' else f'[{slice_name}] '
    reasons += [prefix + explain_failure(failure, metrics.get(slice_name, {}))
                for failure in per_slice.failures]
  reasons += [f'no examples in slice {text_format.MessageToString(spec, as_one_line=True)}'
              for spec in result.missing_slices]
  if result.missing_thresholds:
    reasons.append('no thresholds configured')
  return reasons or ['the validation result names no failed check']


def live_model(push_destination: str) -> Optional[str]:
  """The newest version directory the Pusher wrote: the one TF Serving serves."""
  pushed = atomic_pusher.versions(push_destination)
  return os.path.join(push_destination, str(pushed[-1])) if pushed else None


def _read_cleaning_report(report) -> Optional[dict]:
  if report is None:
    return None
  with open(os.path.join(report.uri, REPORT_FILE)) as f:
    return json.load(f)


def summarize_run(config: PipelineConfig, run_id: Optional[str] = None) -> Optional[RunSummary]:
  """What run `run_id` produced (default: the newest run); None if the store has no such run."""
  store = _store(config)
  context = _run_context(store, run_id) if store is not None else None
  if context is None:
    return None
  outputs = run_outputs(store, context)
  types = tfx.types.standard_artifacts
  evaluation = outputs.get(types.ModelEvaluation.TYPE_NAME)
  metrics = load_metrics(evaluation.uri) if evaluation is not None else {}
  blessed = _int_property(outputs.get(types.ModelBlessing.TYPE_NAME), 'blessed')
  pushed = outputs.get(types.PushedModel.TYPE_NAME)
  model_run = outputs.get(types.ModelRun.TYPE_NAME)
  return RunSummary(
      run_id=context.name,
      cleaning=_read_cleaning_report(outputs.get(CleaningReport.TYPE_NAME)),
      metrics=metrics,
      blessed=None if blessed is None else bool(blessed),
      not_blessed_because=(explain_not_blessed(evaluation.uri, metrics)
                           if blessed == 0 and evaluation is not None else []),
      pushed_to=(_string_property(pushed, 'pushed_destination')
                 if _int_property(pushed, 'pushed') else None),
      live_model=live_model(config.push_destination),
      already_live=_string_property(pushed, atomic_pusher.ALREADY_LIVE_KEY),
      model_run_dir=model_run.uri if model_run is not None else None)


def format_summary(summary: RunSummary, seconds: float) -> str:
  lines = ['', f'Pipeline run {summary.run_id} finished in {seconds / 60:.1f} min.']
  if summary.cleaning:
    c = summary.cleaning
    lines.append(f"Data: read {c['read']} rows, kept {c['kept']}, rejected {c['rejected'] or 0}.")
    shrunk = eval_shrinkage_warning(c)
    if shrunk:
      lines.append(f'Warning: {shrunk}.')
  for slice_name, values in sorted(summary.metrics.items(),
                                   key=lambda kv: (kv[0] != 'overall', kv[0])):
    shown = ', '.join(f'{name} {value:.4f}' for name, value in sorted(values.items())
                      if name != 'example_count')
    count = values.get('example_count')
    lines.append(f'Eval [{slice_name}]' + (f' n={count:.0f}' if count else '') + f': {shown}')
  because = '; '.join(summary.not_blessed_because)
  lines.append(f'Blessed: {summary.blessed}' + (f', because {because}' if because else ''))
  if summary.pushed_to:
    lines.append(f'Pushed to: {summary.pushed_to}')
  elif summary.already_live:
    lines.append(f'Pushed to: not pushed again; the same model is live at {summary.already_live}')
  elif summary.live_model:
    lines.append(f'Pushed to: not pushed; {summary.live_model} stays live')
  else:
    lines.append('Pushed to: not pushed; none pushed yet')
  if summary.model_run_dir:
    lines.append(f'TensorBoard: tensorboard --logdir {summary.model_run_dir}')
  return '\n'.join(lines)
