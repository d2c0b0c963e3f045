"""What a person wants to know after a run, read back from ml-metadata and the artifacts.

A run is one `pipeline_run` context in ml-metadata, named by the run id. The summary reads only the
artifacts that run's executions output (cached executions output the artifacts they reuse), so
other runs in the same store, earlier, later or concurrent, do not leak into it.
"""

import collections
import dataclasses
import glob
import itertools
import json
import math
import os
import re
from typing import Dict, Iterator, List, Optional, Tuple

import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.writers import eval_config_writer
from google.protobuf import text_format
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.utils import path_utils

from components import atomic_pusher
from components.class_checked_evaluator import model_classes
from components.drift_gate import DriftReport, describe, read_drift_report
from components.cleaning.component import CleaningReport, RejectedRows
from components.cleaning.transforms import REJECTED_FILE, REPORT_FILE, warnings
from models import export, features, latency
from models.distillation import TEACHER_PASS_FILE
from pipeline import pipeline
from pipeline.config import PipelineConfig

# The context types TFX's portable runtime (LocalDagRunner) gives each run (named by the run id)
# and each node ('<pipeline>.<node id>').
PIPELINE_RUN_CONTEXT = 'pipeline_run'
NODE_CONTEXT = 'node'
ACCURACY_METRIC = features.ACCURACY_METRIC
CONFUSION_PLOT = 'multiClassConfusionMatrixAtThresholds'
# Eval texts sent one per request to time each model of the run.
LATENCY_REQUESTS = 100


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
  # Median ms of one raw eval text through `serving_default`, timed in the summary's process
  # (all the run's models one after the other, on the same machine and texts).
  latency_ms: Optional[float]
  push_destination: Optional[str]  # None: this model is not pushed by the pipeline
  overall_plots: dict  # TFMA's plots of the whole eval split (confusion matrix, calibration)


@dataclasses.dataclass
class RunSummary:
  run_id: str
  cleaning: Optional[dict]
  model: ModelSummary  # with distillation: the teacher
  student: Optional[ModelSummary]  # with distillation
  teacher_pass: Optional[dict]  # with distillation: what the teacher's pass over training cost
  label_names: List[str]  # the classes as the data names them, in class-id order
  class_names: List[str]  # as people read them, in class-id order
  examples_uri: Optional[str]  # the cleaned examples (Split-train/, Split-eval/)
  statistics_uri: Optional[str]  # TFDV statistics, per split
  anomalies_uri: Optional[str]  # ExampleValidator's anomalies, per split
  spans: Optional[dict]  # a span run's SpanPlan: newest, window, baseline
  drift: Optional[dict]  # a span run's drift report (components/drift_gate.py)


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


def confusion_counts(confusion_plot: dict) -> Dict[Tuple[int, int], float]:
  """(actual class id, predicted class id) -> examples, from TFMA's multi-class confusion matrix
  plot at threshold 0 (the predicted class is the most probable one)."""
  counts = collections.Counter()
  for entry in confusion_plot['matrices'][0].get('entries', []):  # JSON omits zero values
    counts[entry.get('actualClassId', 0), entry.get('predictedClassId', 0)] += (
        entry.get('numWeightedExamples', 0.0))
  return counts


def per_class_precision_recall(confusion_plot: dict) -> Dict[str, float]:
  """'precision[classId:N]' and 'recall[classId:N]' from the confusion matrix; NaN for a class
  never predicted (or never present)."""
  counts = confusion_counts(confusion_plot)
  values = {}
  for class_id in range(1 + max((max(key) for key in counts), default=-1)):
    correct = counts[class_id, class_id]
    predicted = sum(n for (_, p), n in counts.items() if p == class_id)
    actual = sum(n for (a, _), n in counts.items() if a == class_id)
    values[f'precision[classId:{class_id}]'] = correct / predicted if predicted else math.nan
    values[f'recall[classId:{class_id}]'] = correct / actual if actual else math.nan
  return values


def load_eval_result(evaluation_uri: str):
  """TFMA's result for the evaluated model. With a baseline, TFMA stores both models' results
  under their names, and the plots must be asked for by name."""
  _, _, _, model_locations = eval_config_writer.load_eval_run(evaluation_uri)
  return tfma.load_eval_result(
      evaluation_uri,
      model_name=tfma.CANDIDATE_KEY if tfma.CANDIDATE_KEY in (model_locations or {}) else None)


def load_evaluation(evaluation_uri: str) -> Tuple[Dict[str, Dict[str, float]], dict]:
  """(slice name -> metric name -> value, the whole eval split's plots by sub key): TFMA's
  metrics, with per-class precision and recall from its confusion matrix, and its plots."""
  result = load_eval_result(evaluation_uri)
  metrics, overall_plots = {}, {}
  for slice_key, by_output in result.slicing_metrics:
    values = {}
    for sub_key, by_name in by_output.get('', {}).items():
      for name, value in by_name.items():
        if 'doubleValue' in value:  # a number, or the string 'NaN'
          values[f'{name}[{sub_key}]' if sub_key else name] = float(value['doubleValue'])
    metrics[_slice_name(slice_key)] = values
  for slice_key, by_output in result.plots:
    if not slice_key:
      overall_plots = by_output.get('', {})
    confusion = by_output.get('', {}).get('', {}).get(CONFUSION_PLOT)
    if confusion and _slice_name(slice_key) in metrics:
      metrics[_slice_name(slice_key)].update(per_class_precision_recall(confusion))
  return metrics, overall_plots


def _metric_name(metric_key) -> str:
  """The metric's name as load_evaluation spells it (a diff's too: is_diff is a separate flag)."""
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


def _uri(artifact) -> Optional[str]:
  return artifact.uri if artifact is not None else None


def _read_cleaning_report(report, rejected) -> Optional[dict]:
  """The cleaning report, with where it and the rejected rows are ('report_path',
  'rejected_path')."""
  if report is None:
    return None
  path = os.path.join(report.uri, REPORT_FILE)
  with open(path) as f:
    return {**json.load(f), 'report_path': path,
            'rejected_path': os.path.join(rejected.uri, REJECTED_FILE) if rejected else None}


def cleaned_examples(examples_uri: str, split: str) -> Iterator[Tuple[str, str]]:
  """(text, label) of each cleaned example of `split`, in file order."""
  files = sorted(glob.glob(os.path.join(examples_uri, f'Split-{split}', '*')))
  for record in tf.data.TFRecordDataset(files, compression_type='GZIP'):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    yield (feature[features.TEXT_KEY].bytes_list.value[0].decode('utf-8'),
           feature[features.LABEL_KEY].bytes_list.value[0].decode('utf-8'))


def _latency_ms(model, texts: List[str]) -> Optional[float]:
  model_dir = path_utils.serving_model_path(model.uri) if model is not None else ''
  if not texts or not os.path.isdir(model_dir):
    return None
  return latency.batch1_p50_ms(model_dir, texts, LATENCY_REQUESTS)


def _model_summary(outputs: Outputs, trainer_id: str, evaluator_id: str, pusher_id: str,
                   push_destination: Optional[str], latency_texts: List[str]) -> ModelSummary:
  types = tfx.types.standard_artifacts
  evaluation = outputs.get((evaluator_id, types.ModelEvaluation.TYPE_NAME))
  metrics, overall_plots = load_evaluation(evaluation.uri) if evaluation is not None else ({}, {})
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
      model_run_dir=_uri(model_run),
      megabytes=export.megabytes_on_disk(model.uri) if model is not None else None,
      latency_ms=_latency_ms(model, latency_texts),
      push_destination=push_destination,
      overall_plots=overall_plots)


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
  types = tfx.types.standard_artifacts
  model = outputs.get((pipeline.TRAINER_ID, types.Model.TYPE_NAME))
  # Classes learned from the data: the trained model's vocabulary names them.
  label_names = list(config.ingestion.label_names) or (
      model_classes(model.uri) if model is not None else None) or []
  teacher_destination, student_destination = pipeline.push_destinations(config)
  examples_uri = _uri(outputs.get(('TextCleaningExampleGen', types.Examples.TYPE_NAME)))
  cleaning = _read_cleaning_report(
      outputs.get(('TextCleaningExampleGen', CleaningReport.TYPE_NAME)),
      outputs.get(('TextCleaningExampleGen', RejectedRows.TYPE_NAME)))
  drift = outputs.get(('DriftGate', DriftReport.TYPE_NAME))
  latency_texts = ([text for text, _ in itertools.islice(
      cleaned_examples(examples_uri, 'eval'), LATENCY_REQUESTS)] if examples_uri else [])
  student = None
  if any(node == pipeline.STUDENT_TRAINER_ID for node, _ in outputs):
    student = _model_summary(outputs, pipeline.STUDENT_TRAINER_ID, pipeline.STUDENT_EVALUATOR_ID,
                             pipeline.STUDENT_PUSHER_ID, student_destination, latency_texts)
  return RunSummary(
      run_id=context.name,
      cleaning=cleaning,
      model=_model_summary(outputs, pipeline.TRAINER_ID, pipeline.EVALUATOR_ID,
                           pipeline.PUSHER_ID, teacher_destination, latency_texts),
      student=student,
      teacher_pass=_read_teacher_pass(student) if student else None,
      label_names=label_names,
      class_names=list(config.ingestion.display_names) or label_names,
      examples_uri=examples_uri,
      statistics_uri=_uri(outputs.get(('StatisticsGen', types.ExampleStatistics.TYPE_NAME))),
      anomalies_uri=_uri(outputs.get(('ExampleValidator', types.ExampleAnomalies.TYPE_NAME))),
      spans=(cleaning or {}).get('spans'),
      drift=read_drift_report(drift.uri) if drift is not None else None)


PER_CLASS_METRIC = re.compile(r'(?P<name>\w+)\[classId:(?P<class_id>\d+)\]')
PER_CLASS_COLUMNS = {'precision': 'precision', 'recall': 'recall', 'auc': 'AUC'}  # -> heading


def _class_name(class_names: List[str], class_id: int) -> str:
  return class_names[class_id] if class_id < len(class_names) else f'class {class_id}'


def format_metrics_table(metrics: Dict[str, Dict[str, float]], class_names: List[str]) -> List[str]:
  """Overall accuracy (and its change against the last blessed model), a per-class table with
  class names, and the weakest slice: what a person reads, not every TFMA number."""
  overall = metrics.get('overall', {})
  if ACCURACY_METRIC not in overall:
    return ['Eval: no metrics']
  count = overall.get('example_count')
  accuracy, change = overall[ACCURACY_METRIC], overall.get(f'{ACCURACY_METRIC}_diff')
  # Both models are scored by TFMA on the same eval split: the live one's is the candidate's
  # minus the difference TFMA computed.
  lines = [f'Eval: accuracy {accuracy:.4f}' + (f' on {count:.0f} examples' if count else '')
           + (f'; the last blessed model {accuracy - change:.4f} on the same examples '
              f'({change:+.4f})' if change is not None else '')]
  per_class: Dict[int, Dict[str, float]] = {}
  for name, value in overall.items():
    match = PER_CLASS_METRIC.fullmatch(name)
    if match and match['name'] in PER_CLASS_COLUMNS:
      per_class.setdefault(int(match['class_id']), {})[match['name']] = value
  if per_class:
    width = max(len(_class_name(class_names, i)) for i in per_class) + 2
    lines.append(f"  {'class':<{width}}"
                 + ''.join(f'{heading:>10}' for heading in PER_CLASS_COLUMNS.values()))
    for class_id, values in sorted(per_class.items()):
      lines.append(f'  {_class_name(class_names, class_id):<{width}}' + ''.join(
          f"{'-':>10}" if math.isnan(values.get(c, math.nan)) else f'{values[c]:>10.4f}'
          for c in PER_CLASS_COLUMNS))
  sliced = {name: values for name, values in metrics.items()
            if name != 'overall' and ACCURACY_METRIC in values}
  if len(sliced) > 1:
    weakest = min(sliced, key=lambda name: sliced[name][ACCURACY_METRIC])
    count = sliced[weakest].get('example_count')
    lines.append(f'Weakest slice: {weakest}, accuracy {sliced[weakest][ACCURACY_METRIC]:.4f}'
                 + (f' (n={count:.0f})' if count else ''))
  return lines


def span_range(spans: List[int]) -> str:
  return f'{spans[0]}' if len(spans) == 1 else f'{spans[0]}-{spans[-1]}'


def format_spans(summary: RunSummary) -> List[str]:
  """Which spans the run read and how the newest compared with the one before: '' without spans."""
  if not summary.spans:
    return []
  plan = summary.spans
  lines = [f"Spans: newest {plan['newest']} (evaluated on its eval split), trained on "
           f"{span_range(plan['window'])}."]
  if summary.drift:
    drift = summary.drift
    marked = ' (on_drift: warn, trained anyway)' if drift.get('drifted') else ''
    lines.append(f"Drift: {drift['verdict']}{marked}.")
    lines += [f'  {describe(m)}' for m in drift['measurements']]
  return lines


def push_status(model: ModelSummary) -> str:
  """Where the model went: its version, or why it was not pushed and what stays live."""
  if model.pushed_to:
    return model.pushed_to
  if model.already_live:
    return f'not pushed again; the same model is live at {model.already_live}'
  if model.push_destination is None:
    return 'not pushed (distillation.push)'
  if model.live_model:
    return f'not pushed; {model.live_model} stays live'
  return 'not pushed; none pushed yet'


def _format_model(model: ModelSummary, heading: str, class_names: List[str]) -> List[str]:
  lines = [heading + line for line in format_metrics_table(model.metrics, class_names)]
  because = '; '.join(model.not_blessed_because)
  lines.append(f'{heading}Blessed: {model.blessed}' + (f', because {because}' if because else ''))
  lines.append(f'{heading}Pushed to: {push_status(model)}')
  if model.latency_ms is not None:
    lines.append(f'{heading}Serving: {model.latency_ms:.2f} ms per text at batch 1 (p50 in this '
                 f'process, {model.megabytes or 0:.0f} MB)')
  if model.model_run_dir:
    lines.append(f'{heading}TensorBoard: tensorboard --logdir {model.model_run_dir}')
  return lines


def _accuracy(model: ModelSummary, slice_name: str = 'overall') -> str:
  value = model.metrics.get(slice_name, {}).get(ACCURACY_METRIC)
  return '-' if value is None else f'{value:.4f}'


def _milliseconds(model: ModelSummary) -> str:
  return '-' if model.latency_ms is None else f'{model.latency_ms:.2f}'


def format_summary(summary: RunSummary, seconds: float) -> str:
  lines = ['', f'Pipeline run {summary.run_id} finished in {seconds / 60:.1f} min.']
  if summary.cleaning:
    c = summary.cleaning
    kept = ', '.join(f'{split} {count}' for split, count in c['kept'].items())
    reasons = ', '.join(f'{reason} {count}' for reason, count in c['rejected'].items())
    lines.append(f"Data: read {c['read']} rows; kept {c['kept_total']} ({kept}); rejected "
                 f"{c['rejected_total']}" + (f' ({reasons})' if reasons else '') + '.')
    lines.append(f"  cleaning report {c['report_path']}"
                 + (f", rejected rows {c['rejected_path']}" if c['rejected_path'] else ''))
    lines += [f'Warning: {warning}.' for warning in warnings(c)]
  lines += format_spans(summary)
  if summary.student is None:
    return '\n'.join(lines + _format_model(summary.model, '', summary.class_names))
  teacher, student = summary.model, summary.student
  slices = sorted(set(teacher.metrics) | set(student.metrics),
                  key=lambda name: (name != 'overall', name))
  lines.append(f"{'accuracy':<28} {'teacher':>8} {'student':>8}")
  lines += [f'  {name:<26} {_accuracy(teacher, name):>8} {_accuracy(student, name):>8}'
            for name in slices]
  lines.append(f"  {'size (MB)':<26} {teacher.megabytes or 0:>8.1f} {student.megabytes or 0:>8.1f}")
  lines.append(f"  {'latency p50, 1 text (ms)':<26} {_milliseconds(teacher):>8} "
               f'{_milliseconds(student):>8}')
  if summary.teacher_pass:
    p = summary.teacher_pass
    lines.append(f"Teacher's probabilities over {p['examples']} training examples: computed "
                 f"once, in {p['seconds']:.0f} s"
                 + (f"; over {p['augmented_examples']} augmented copies, in "
                    f"{p['augmented_seconds']:.0f} s" if p.get('augmented_examples') else '')
                 + '.')
  return '\n'.join(lines + _format_model(teacher, 'Teacher ', summary.class_names)
                   + _format_model(student, 'Student ', summary.class_names))
