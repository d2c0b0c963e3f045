"""A run's record, read back from ml-metadata and the artifacts its executions output: what the
run summary (pipeline/run_summary.py) and the report (pipeline/report.py) show.

A run is one `pipeline_run` context in ml-metadata, named by the run id. Only the artifacts that
run's executions output are read (cached executions output the artifacts they reuse), so other
runs in the same store, earlier, later or concurrent, do not leak into it. Nodes are found by the
pipeline's node ids (pipeline/pipeline.py).
"""

import collections
import dataclasses
import glob
import json
import math
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
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
from components.drift_gate import DriftReport, read_drift_report
from components.cleaning.component import CleaningReport, RejectedRows
from components.cleaning.transforms import REJECTED_FILE, REPORT_FILE
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
# The ingestion's node id (TFX's default: the component's class name).
EXAMPLE_GEN_ID = 'TextCleaningExampleGen'
# Eval texts sent one per request to time each model of the run.
LATENCY_REQUESTS = 100
# The report's most confident mistakes, per true class.
MISTAKES_PER_CLASS = 3


@dataclasses.dataclass
class ModelRecord:
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
  # The most confident wrong predictions on the eval split (most_confident_mistakes).
  mistakes: List[dict]
  overall_plots: dict  # TFMA's plots of the whole eval split (confusion matrix, calibration)
  # The same metrics on the fixed golden file (IngestionSettings.golden_pattern); {} without one.
  golden_metrics: Dict[str, Dict[str, float]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RunRecord:
  run_id: str
  cleaning: Optional[dict]
  model: ModelRecord  # with distillation: the teacher
  student: Optional[ModelRecord]  # with distillation
  teacher_pass: Optional[dict]  # with distillation: what the teacher's pass over training cost
  label_names: List[str]  # the classes as the data names them, in class-id order
  class_names: List[str]  # as people read them, in class-id order
  examples_uri: Optional[str]  # the cleaned examples (Split-train/, Split-eval/)
  statistics_uri: Optional[str]  # TFDV statistics, per split
  anomalies_uri: Optional[str]  # ExampleValidator's anomalies, per split
  spans: Optional[dict]  # a span run's SpanPlan: newest, window, baseline
  drift: Optional[dict]  # a span run's drift report (components/drift_gate.py)


def open_store(config: PipelineConfig) -> Optional[metadata_store.MetadataStore]:
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


def int_property(artifact, name: str) -> Optional[int]:
  if artifact is None or name not in artifact.custom_properties:
    return None
  return artifact.custom_properties[name].int_value


def string_property(artifact, name: str) -> Optional[str]:
  if artifact is None or name not in artifact.custom_properties:
    return None
  return artifact.custom_properties[name].string_value


def float_property(artifact, name: str) -> Optional[float]:
  if artifact is None or name not in artifact.custom_properties:
    return None
  return artifact.custom_properties[name].double_value


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


def most_confident_mistakes(eval_rows: Sequence[Tuple[str, str]], probabilities: np.ndarray,
                            label_names: Sequence[str], per_class: int) -> List[dict]:
  """Per true class, the `per_class` wrong predictions made with the highest probability: text,
  actual and predicted class ids, and that probability; most confident first."""
  class_ids = {name: class_id for class_id, name in enumerate(label_names)}
  mistakes = collections.defaultdict(list)
  for (text, label), row in zip(eval_rows, probabilities, strict=True):
    predicted, actual = int(row.argmax()), class_ids.get(label)
    if actual is not None and predicted != actual:
      mistakes[actual].append({'text': text, 'actual': actual, 'predicted': predicted,
                               'probability': float(row[predicted])})
  chosen = [mistake for found in mistakes.values()
            for mistake in sorted(found, key=lambda m: -m['probability'])[:per_class]]
  return sorted(chosen, key=lambda m: -m['probability'])


def _served_figures(model, eval_rows: List[Tuple[str, str]],
                    label_names: List[str]) -> Tuple[Optional[float], List[dict]]:
  """(batch-1 latency in ms, the most confident mistakes), from the exported model's
  `serving_default` on the eval split's raw texts, as TF Serving would run it."""
  model_dir = path_utils.serving_model_path(model.uri) if model is not None else ''
  if not eval_rows or not os.path.isdir(model_dir):
    return None, []
  serve = latency.serving_signature(model_dir)
  texts = [text for text, _ in eval_rows]
  latency_ms = latency.batch1_p50_ms(serve, texts[:LATENCY_REQUESTS], LATENCY_REQUESTS)
  return latency_ms, most_confident_mistakes(eval_rows, latency.probabilities_of(serve, texts),
                                             label_names, MISTAKES_PER_CLASS)


def _model_record(outputs: Outputs, trainer_id: str, evaluator_id: str, pusher_id: str,
                   push_destination: Optional[str], eval_rows: List[Tuple[str, str]],
                   label_names: List[str], golden_evaluator_id: Optional[str] = None
                   ) -> ModelRecord:
  types = tfx.types.standard_artifacts
  evaluation = outputs.get((evaluator_id, types.ModelEvaluation.TYPE_NAME))
  golden = outputs.get((golden_evaluator_id, types.ModelEvaluation.TYPE_NAME))
  metrics, overall_plots = load_evaluation(evaluation.uri) if evaluation is not None else ({}, {})
  blessed = int_property(outputs.get((evaluator_id, types.ModelBlessing.TYPE_NAME)), 'blessed')
  pushed = outputs.get((pusher_id, types.PushedModel.TYPE_NAME))
  model = outputs.get((trainer_id, types.Model.TYPE_NAME))
  model_run = outputs.get((trainer_id, types.ModelRun.TYPE_NAME))
  latency_ms, mistakes = _served_figures(model, eval_rows, label_names)
  return ModelRecord(
      metrics=metrics,
      blessed=None if blessed is None else bool(blessed),
      not_blessed_because=(explain_not_blessed(evaluation.uri, metrics)
                           if blessed == 0 and evaluation is not None else []),
      pushed_to=(string_property(pushed, 'pushed_destination')
                 if int_property(pushed, 'pushed') else None),
      live_model=live_model(push_destination) if push_destination else None,
      already_live=string_property(pushed, atomic_pusher.ALREADY_LIVE_KEY),
      model_run_dir=_uri(model_run),
      megabytes=export.megabytes_on_disk(model.uri) if model is not None else None,
      latency_ms=latency_ms,
      mistakes=mistakes,
      push_destination=push_destination,
      overall_plots=overall_plots,
      golden_metrics=load_evaluation(golden.uri)[0] if golden is not None else {})


def _read_teacher_pass(student: ModelRecord) -> Optional[dict]:
  path = os.path.join(student.model_run_dir or '', TEACHER_PASS_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def read_run(config: PipelineConfig, run_id: Optional[str] = None) -> Optional[RunRecord]:
  """What run `run_id` produced (default: the newest run); None if the store has no such run."""
  store = open_store(config)
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
  examples_uri = _uri(outputs.get((EXAMPLE_GEN_ID, types.Examples.TYPE_NAME)))
  cleaning = _read_cleaning_report(
      outputs.get((EXAMPLE_GEN_ID, CleaningReport.TYPE_NAME)),
      outputs.get((EXAMPLE_GEN_ID, RejectedRows.TYPE_NAME)))
  drift = outputs.get(('DriftGate', DriftReport.TYPE_NAME))
  eval_rows = list(cleaned_examples(examples_uri, 'eval')) if examples_uri else []
  student = None
  if any(node == pipeline.STUDENT_TRAINER_ID for node, _ in outputs):
    student = _model_record(outputs, pipeline.STUDENT_TRAINER_ID, pipeline.STUDENT_EVALUATOR_ID,
                            pipeline.STUDENT_PUSHER_ID, student_destination, eval_rows,
                            label_names)
  return RunRecord(
      run_id=context.name,
      cleaning=cleaning,
      model=_model_record(outputs, pipeline.TRAINER_ID, pipeline.EVALUATOR_ID,
                          pipeline.PUSHER_ID, teacher_destination, eval_rows, label_names,
                          pipeline.GOLDEN_EVALUATOR_ID),
      student=student,
      teacher_pass=_read_teacher_pass(student) if student else None,
      label_names=label_names,
      class_names=list(config.ingestion.display_names) or label_names,
      examples_uri=examples_uri,
      statistics_uri=_uri(outputs.get(('StatisticsGen', types.ExampleStatistics.TYPE_NAME))),
      anomalies_uri=_uri(outputs.get(('ExampleValidator', types.ExampleAnomalies.TYPE_NAME))),
      spans=(cleaning or {}).get('spans'),
      drift=read_drift_report(drift.uri) if drift is not None else None)
