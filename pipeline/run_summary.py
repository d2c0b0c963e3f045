"""What a person wants to know after a run, read back from ml-metadata and the artifacts.

A run is one `pipeline_run` context in ml-metadata, named by the run id. The summary reads only the
artifacts that run's executions output (cached executions output the artifacts they reuse), so
other runs in the same store, earlier, later or concurrent, do not leak into it.
"""

import dataclasses
import glob
import json
import os
from typing import Dict, List, Optional, Tuple

import tensorflow_model_analysis as tfma
from google.protobuf import text_format
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components import atomic_pusher
from components.cleaning.component import CleaningReport
from components.cleaning.transforms import REPORT_FILE, eval_shrinkage_warning
from models import export
from models.distillation import TEACHER_PASS_FILE
from pipeline import pipeline
from pipeline.config import PipelineConfig

# The context types TFX's portable runtime (LocalDagRunner) gives each run (named by the run id)
# and each node ('<pipeline>.<node id>').
PIPELINE_RUN_CONTEXT = 'pipeline_run'
NODE_CONTEXT = 'node'
ACCURACY_METRIC = 'sparse_categorical_accuracy'


@dataclasses.dataclass
class ModelSummary:
  """One trained model of the run: the model, or with distillation the teacher and the student."""
  metrics: Dict[str, Dict[str, float]]  # slice name -> metric name -> value
  blessed: Optional[bool]
  not_blessed_because: List[str]  # the failed checks, with their values
  pushed_to: Optional[str]
  live_model: Optional[str]  # the newest version under its push destination: what serving loads
  already_live: Optional[str]  # the version that already held this run's model: not pushed again
  model_run_dir: Optional[str]
  megabytes: Optional[float]  # the exported model on disk
  push_destination: Optional[str]  # None: this model is not pushed by the pipeline


@dataclasses.dataclass
class RunSummary:
  run_id: str
  cleaning: Optional[dict]
  model: ModelSummary  # with distillation: the teacher
  student: Optional[ModelSummary]  # with distillation
  teacher_pass: Optional[dict]  # with distillation: what the teacher's pass over training cost


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


Outputs = Dict[Tuple[str, str], metadata_store_pb2.Artifact]


def run_outputs(store: metadata_store.MetadataStore,
                context: metadata_store_pb2.Context) -> Outputs:
  """(node id, artifact type name) -> the newest artifact of that type the node's executions in
  the run output."""
  run_executions = {e.id for e in store.get_executions_by_context(context.id)}
  node_of = {}
  for node in store.get_contexts_by_type(NODE_CONTEXT):
    for execution in store.get_executions_by_context(node.id):
      if execution.id in run_executions:
        node_of[execution.id] = node.name.split('.', 1)[1]  # '<pipeline>.<node id>'
  events = store.get_events_by_execution_ids(list(run_executions))
  # OUTPUT only: a Resolver's picks (the last blessed model) are INTERNAL_OUTPUT events.
  producer = {e.artifact_id: node_of.get(e.execution_id) for e in events
              if e.type == metadata_store_pb2.Event.OUTPUT}
  type_names = {t.id: t.name for t in store.get_artifact_types()}
  return {(producer[a.id], type_names[a.type_id]): a
          for a in sorted(store.get_artifacts_by_id(list(producer)), key=lambda a: a.id)}


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


def _model_summary(outputs: Outputs, trainer_id: str, evaluator_id: str, pusher_id: str,
                   push_destination: Optional[str]) -> ModelSummary:
  types = tfx.types.standard_artifacts
  evaluation = outputs.get((evaluator_id, types.ModelEvaluation.TYPE_NAME))
  metrics = load_metrics(evaluation.uri) if evaluation is not None else {}
  blessed = _int_property(outputs.get((evaluator_id, types.ModelBlessing.TYPE_NAME)), 'blessed')
  pushed = outputs.get((pusher_id, types.PushedModel.TYPE_NAME))
  model = outputs.get((trainer_id, types.Model.TYPE_NAME))
  model_run = outputs.get((trainer_id, types.ModelRun.TYPE_NAME))
  return ModelSummary(
      metrics=metrics,
      blessed=None if blessed is None else bool(blessed),
      not_blessed_because=(explain_not_blessed(evaluation.uri, metrics)
                           if blessed == 0 and evaluation is not None else []),
      pushed_to=(_string_property(pushed, 'pushed_destination')
                 if _int_property(pushed, 'pushed') else None),
      live_model=live_model(push_destination) if push_destination else None,
      already_live=_string_property(pushed, atomic_pusher.ALREADY_LIVE_KEY),
      model_run_dir=model_run.uri if model_run is not None else None,
      megabytes=export.megabytes_on_disk(model.uri) if model is not None else None,
      push_destination=push_destination)


def _read_teacher_pass(student: ModelSummary) -> Optional[dict]:
  path = os.path.join(student.model_run_dir or '', TEACHER_PASS_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def summarize_run(config: PipelineConfig, run_id: Optional[str] = None) -> Optional[RunSummary]:
  """What run `run_id` produced (default: the newest run); None if the store has no such run."""
  store = _store(config)
  context = _run_context(store, run_id) if store is not None else None
  if context is None:
    return None
  outputs = run_outputs(store, context)
  teacher_destination, student_destination = pipeline.push_destinations(config)
  student = None
  if any(node == pipeline.STUDENT_TRAINER_ID for node, _ in outputs):
    student = _model_summary(outputs, pipeline.STUDENT_TRAINER_ID, pipeline.STUDENT_EVALUATOR_ID,
                             pipeline.STUDENT_PUSHER_ID, student_destination)
  return RunSummary(
      run_id=context.name,
      cleaning=_read_cleaning_report(
          outputs.get(('TextCleaningExampleGen', CleaningReport.TYPE_NAME))),
      model=_model_summary(outputs, pipeline.TRAINER_ID, pipeline.EVALUATOR_ID,
                           pipeline.PUSHER_ID, teacher_destination),
      student=student,
      teacher_pass=_read_teacher_pass(student) if student else None)


def _format_model(model: ModelSummary, heading: str) -> List[str]:
  lines = []
  for slice_name, values in sorted(model.metrics.items(),
                                   key=lambda kv: (kv[0] != 'overall', kv[0])):
    shown = ', '.join(f'{name} {value:.4f}' for name, value in sorted(values.items())
                      if name != 'example_count')
    count = values.get('example_count')
    lines.append(f'{heading}Eval [{slice_name}]' + (f' n={count:.0f}' if count else '') +
                 f': {shown}')
  because = '; '.join(model.not_blessed_because)
  lines.append(f'{heading}Blessed: {model.blessed}' + (f', because {because}' if because else ''))
  if model.pushed_to:
    lines.append(f'{heading}Pushed to: {model.pushed_to}')
  elif model.already_live:
    lines.append(f'{heading}Pushed to: not pushed again; the same model is live at '
                 f'{model.already_live}')
  elif model.push_destination is None:
    lines.append(f'{heading}Pushed to: not pushed (distillation.push)')
  elif model.live_model:
    lines.append(f'{heading}Pushed to: not pushed; {model.live_model} stays live')
  else:
    lines.append(f'{heading}Pushed to: not pushed; none pushed yet')
  if model.model_run_dir:
    lines.append(f'{heading}TensorBoard: tensorboard --logdir {model.model_run_dir}')
  return lines


def _accuracy(model: ModelSummary, slice_name: str = 'overall') -> str:
  value = model.metrics.get(slice_name, {}).get(ACCURACY_METRIC)
  return '-' if value is None else f'{value:.4f}'


def format_summary(summary: RunSummary, seconds: float) -> str:
  lines = ['', f'Pipeline run {summary.run_id} finished in {seconds / 60:.1f} min.']
  if summary.cleaning:
    c = summary.cleaning
    lines.append(f"Data: read {c['read']} rows, kept {c['kept']}, rejected {c['rejected'] or 0}.")
    shrunk = eval_shrinkage_warning(c)
    if shrunk:
      lines.append(f'Warning: {shrunk}.')
  if summary.student is None:
    return '\n'.join(lines + _format_model(summary.model, ''))
  teacher, student = summary.model, summary.student
  slices = sorted(set(teacher.metrics) | set(student.metrics),
                  key=lambda name: (name != 'overall', name))
  lines.append(f"{'accuracy':<28} {'teacher':>8} {'student':>8}")
  lines += [f'  {name:<26} {_accuracy(teacher, name):>8} {_accuracy(student, name):>8}'
            for name in slices]
  lines.append(f"  {'size (MB)':<26} {teacher.megabytes or 0:>8.1f} {student.megabytes or 0:>8.1f}")
  if summary.teacher_pass:
    p = summary.teacher_pass
    lines.append(f"Teacher's probabilities over {p['examples']} training examples: computed "
                 f"once, in {p['seconds']:.0f} s.")
  return '\n'.join(lines + _format_model(teacher, 'Teacher ') + _format_model(student, 'Student '))
