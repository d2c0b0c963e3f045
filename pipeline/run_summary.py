"""The run summary a person reads in the terminal after a run: the data, the spans and drift, the
metrics with class names, the verdict and where the model went, from the run's record
(pipeline/run_record.py).
"""

import math
import re
from typing import Dict, List

from components.cleaning.transforms import warnings
from components.drift_gate import describe
from pipeline.run_record import ACCURACY_METRIC, ModelRecord, RunRecord



PER_CLASS_METRIC = re.compile(r'(?P<name>\w+)\[classId:(?P<class_id>\d+)\]')
PER_CLASS_COLUMNS = {'precision': 'precision', 'recall': 'recall', 'auc': 'AUC'}  # -> heading


def class_name(class_names: List[str], class_id: int) -> str:
  return class_names[class_id] if class_id < len(class_names) else f'class {class_id}'


def accuracy_line(metrics: Dict[str, Dict[str, float]], heading: str = 'Eval') -> str:
  """The overall accuracy, and the last blessed model's on the same examples."""
  overall = metrics.get('overall', {})
  if ACCURACY_METRIC not in overall:
    return f'{heading}: no metrics'
  count = overall.get('example_count')
  accuracy, change = overall[ACCURACY_METRIC], overall.get(f'{ACCURACY_METRIC}_diff')
  # Both models are scored by TFMA on the same examples: the live one's is the candidate's
  # minus the difference TFMA computed.
  return (f'{heading}: accuracy {accuracy:.4f}' + (f' on {count:.0f} examples' if count else '')
          + (f'; the last blessed model {accuracy - change:.4f} on the same examples '
             f'({change:+.4f})' if change is not None else ''))


def format_metrics_table(metrics: Dict[str, Dict[str, float]], class_names: List[str]) -> List[str]:
  """Overall accuracy (and the last blessed model's), a per-class table with class names, and
  the weakest slice: what a person reads, not every TFMA number."""
  overall = metrics.get('overall', {})
  if ACCURACY_METRIC not in overall:
    return [accuracy_line(metrics)]
  lines = [accuracy_line(metrics)]
  per_class: Dict[int, Dict[str, float]] = {}
  for name, value in overall.items():
    match = PER_CLASS_METRIC.fullmatch(name)
    if match and match['name'] in PER_CLASS_COLUMNS:
      per_class.setdefault(int(match['class_id']), {})[match['name']] = value
  if per_class:
    width = max(len(class_name(class_names, i)) for i in per_class) + 2
    lines.append(f"  {'class':<{width}}"
                 + ''.join(f'{heading:>10}' for heading in PER_CLASS_COLUMNS.values()))
    for class_id, values in sorted(per_class.items()):
      lines.append(f'  {class_name(class_names, class_id):<{width}}' + ''.join(
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


def format_spans(summary: RunRecord) -> List[str]:
  """Which spans the run read and how the newest compared with the one before: '' without spans."""
  if not summary.spans:
    return []
  plan = summary.spans
  lines = [f"Spans: newest {plan['newest']}, trained on {span_range(plan['window'])}."]
  if summary.drift:
    drift = summary.drift
    marked = ' (on_drift: warn, trained anyway)' if drift.get('drifted') else ''
    lines.append(f"Drift: {drift['verdict']}{marked}.")
    lines += [f'  {describe(m)}' for m in drift['measurements']]
  return lines


def push_status(model: ModelRecord) -> str:
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


def _format_model(model: ModelRecord, heading: str, class_names: List[str]) -> List[str]:
  lines = [heading + line for line in format_metrics_table(model.metrics, class_names)]
  if model.golden_metrics:
    lines.append(heading + accuracy_line(model.golden_metrics, 'Golden file'))
  because = '; '.join(model.not_blessed_because)
  lines.append(f'{heading}Blessed: {model.blessed}' + (f', because {because}' if because else ''))
  lines.append(f'{heading}Pushed to: {push_status(model)}')
  if model.latency_ms is not None:
    lines.append(f'{heading}Serving: {model.latency_ms:.2f} ms per text at batch 1 (p50 in this '
                 f'process, {model.megabytes or 0:.0f} MB)')
  if model.model_run_dir:
    lines.append(f'{heading}TensorBoard: tensorboard --logdir {model.model_run_dir}')
  return lines


def _accuracy(model: ModelRecord, slice_name: str = 'overall') -> str:
  value = model.metrics.get(slice_name, {}).get(ACCURACY_METRIC)
  return '-' if value is None else f'{value:.4f}'


def _milliseconds(model: ModelRecord) -> str:
  return '-' if model.latency_ms is None else f'{model.latency_ms:.2f}'


def format_summary(summary: RunRecord, seconds: float) -> str:
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
