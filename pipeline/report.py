"""report.html: one page per run for a person to open in a browser.

What the data was (rows read, kept and rejected by reason, the spans and their drift, label and
length distributions, a few rejected rows, TFDV's statistics and anomalies), how the model did
(metrics with class names, the confusion matrix, accuracy per length slice, reliability), against
the last blessed model, how training went (the Trainer's TensorBoard scalars), whether and where
the model was pushed, and the history of every run of the pipeline. This module gathers what the
page shows from the run's record (pipeline/run_record.py) and its history (pipeline/history.py);
templates/report.html lays it out (Jinja2, autoescaped); pipeline/charts.py draws the charts.
The page is self-contained and opens offline: TFDV's and TFMA's own HTML views load their
scripts from the internet.
"""

import collections
import glob
import json
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

import jinja2
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorboard.backend.event_processing import event_accumulator

from components.data_gate import describe_anomalies_at
from models import features
from pipeline import charts
from pipeline.history import PastRun
from pipeline.run_record import (ACCURACY_METRIC, CONFUSION_PLOT, MISTAKES_PER_CLASS, ModelRecord,
                                 RunRecord, cleaned_examples, confusion_counts)
from pipeline.run_summary import class_name, format_metrics_table, push_status, span_range

REPORT_FILE = 'report.html'
TEMPLATE = 'report.html'
REJECTED_SHOWN = 10
# The Trainer's TensorBoard tags the training curves show, per run, all at the optimizer step:
# the training metrics every few steps (models/trainer.py's StepScalars), the validation metrics
# after each evaluation round (Keras' TensorBoard callback).
SCALARS = ('loss', 'accuracy')
SCALAR_TAGS = {'train': 'step_{}', 'validation': 'evaluation_{}_vs_iterations'}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #1a7f37; } .bad { color: #cf222e; }
img { max-width: 100%; margin: 0.5em 1em 0.5em 0; }
code, .raw { font-family: ui-monospace, monospace; font-size: 0.9em; }
.raw { white-space: pre-wrap; word-break: break-all; max-width: 40em; }
.raw:first-child { white-space: nowrap; }  /* the reason: one word, never cut */
"""


def report_path(pipeline_root: str, run_id: str) -> str:
  """<pipeline root>/reports/<run id>/report.html (the run id's ':' made '-' for file systems
  and URLs that dislike it)."""
  return os.path.join(pipeline_root, 'reports', re.sub(r'[^\w.-]', '-', run_id), REPORT_FILE)


def _number(value) -> str:
  return f'{value:.4f}' if isinstance(value, float) else f'{value:,}'


ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(__file__), 'templates')),
    autoescape=True, undefined=jinja2.StrictUndefined)
ENVIRONMENT.filters['number'] = _number


# --- data ----------------------------------------------------------------------------------


def _cleaned_examples(examples_uri: str) -> Dict[str, Tuple[List[str], List[int]]]:
  """Split -> (labels, words per text) of the cleaned examples."""
  splits = {}
  for folder in sorted(glob.glob(os.path.join(examples_uri, 'Split-*'))):
    split = os.path.basename(folder)[len('Split-'):]
    pairs = list(cleaned_examples(examples_uri, split))
    splits[split] = ([label for _, label in pairs], [len(text.split()) for text, _ in pairs])
  return splits


def _rejected_rows(path: Optional[str]) -> List[tuple]:
  if not path or not os.path.exists(path):
    return []
  rows = []
  with open(path, encoding='utf-8') as f:
    for line in f:
      if len(rows) == REJECTED_SHOWN:
        break
      row = json.loads(line)
      rows.append((row['reason'], row.get('detail', ''),
                   f"{row['source']}:{row['record_number']}", str(row['raw'])[:300]))
  return rows


def _statistics(statistics_uri: Optional[str], display_names: Dict[str, str]) -> List[tuple]:
  if not statistics_uri:
    return []
  rows = []
  for path in sorted(glob.glob(os.path.join(statistics_uri, 'Split-*', 'FeatureStats.pb'))):
    split = os.path.basename(os.path.dirname(path))[len('Split-'):]
    for dataset in tfdv.load_stats_binary(path).datasets:
      for feature in dataset.features:
        name = feature.path.step[-1]
        if name not in (features.TEXT_KEY, features.LABEL_KEY):
          continue  # a span run's drift profile: the drift table shows what it measures
        stats = feature.string_stats
        frequent = (', '.join(f'{display_names.get(v.value, v.value)} ({v.frequency:.0f})'
                              for v in stats.top_values[:6])
                    if name == features.LABEL_KEY else '')
        rows.append((split, name, int(dataset.num_examples), int(stats.common_stats.num_missing),
                     int(stats.unique), f'{stats.avg_length:.1f}', frequent))
  return rows


def _anomalies(anomalies_uri: Optional[str]) -> Optional[List[str]]:
  if not anomalies_uri:
    return None
  splits = [os.path.basename(folder)[len('Split-'):]
            for folder in sorted(glob.glob(os.path.join(anomalies_uri, 'Split-*')))]
  return describe_anomalies_at(anomalies_uri, splits)


def _drift_rows(measurements: Sequence[dict]) -> List[tuple]:
  return [(m['feature'], m['measure'], '-' if m['value'] is None else m['value'],
           '-' if m['threshold'] is None else m['threshold'], 'yes' if m['flagged'] else 'no')
          for m in measurements]


# --- the model -----------------------------------------------------------------------------


def _training_series(model_run_dir: Optional[str]) -> Dict[Tuple[str, str], list]:
  """(run, scalar) -> (training step, value) from the Trainer's TensorBoard logs."""
  series = {}
  for run, tag in SCALAR_TAGS.items():
    folder = os.path.join(model_run_dir or '', run)
    if not model_run_dir or not os.path.isdir(folder):
      continue
    events = event_accumulator.EventAccumulator(
        folder, size_guidance={event_accumulator.TENSORS: 0})
    events.Reload()
    for name in SCALARS:
      if tag.format(name) in events.Tags()['tensors']:
        series[run, name] = [(event.step, float(tf.make_ndarray(event.tensor_proto)))
                             for event in events.Tensors(tag.format(name))]
  return series


def _most_confused(plots: dict, names: List[str], shown: int = 5) -> List[tuple]:
  """(actual class, predicted as, examples, share of the actual class) for the largest
  off-diagonal cells of TFMA's confusion matrix."""
  confusion = plots.get('', {}).get(CONFUSION_PLOT)
  if not confusion:
    return []
  counts = confusion_counts(confusion)
  actual_totals = collections.Counter()
  for (actual, _), count in counts.items():
    actual_totals[actual] += count
  confused = sorted(((count, actual, predicted) for (actual, predicted), count in counts.items()
                     if actual != predicted and count), reverse=True)[:shown]
  return [(class_name(names, actual), class_name(names, predicted), int(count),
           f'{100 * count / actual_totals[actual]:.1f}%') for count, actual, predicted in confused]


def _model(title: str, model: ModelRecord, names: List[str]) -> dict:
  overall = model.metrics.get('overall', {})
  change = overall.get(f'{ACCURACY_METRIC}_diff')
  against_live = ([('last blessed model', overall[ACCURACY_METRIC] - change),
                   ('this model', overall[ACCURACY_METRIC]), ('change', change)]
                  if change is not None and ACCURACY_METRIC in overall else [])
  return {
      'title': title, 'blessed': model.blessed, 'not_blessed_because': model.not_blessed_because,
      'push_status': push_status(model),
      'metrics_text': '\n'.join(format_metrics_table(model.metrics, names)),
      'against_live': against_live,
      'confusion_matrix': charts.confusion_matrix(model.overall_plots, names),
      'reliability': charts.reliability(model.overall_plots, names),
      'slices': charts.slices(model),
      'training_curves': charts.training_curves(_training_series(model.model_run_dir), SCALARS),
      'mistakes': [(m['text'], class_name(names, m['actual']), class_name(names, m['predicted']),
                    m['probability']) for m in model.mistakes],
      'most_confused': _most_confused(model.overall_plots, names),
      'model_run_dir': model.model_run_dir, 'megabytes': model.megabytes,
      'latency_ms': model.latency_ms}


# --- the history ---------------------------------------------------------------------------


def _history_row(run: PastRun) -> tuple:
  spans = (f"{run.spans['newest']}; {span_range(run.spans['window'])}" if run.spans else '-')
  rows = f'{run.kept:,} / {run.rejected:,}' if run.kept is not None else '-'
  drift = ('; '.join(f"{m['feature']} {m['value']:.4f} / {m['threshold']:.4f}"
                     + (' (flagged)' if m['flagged'] else '')
                     for m in run.drift if m['value'] is not None)
           or ('first span' if run.spans and run.spans['baseline'] is None else '-'))
  return (run.run_id, run.started.isoformat(timespec='seconds'), run.outcome, spans, rows,
          drift, '-' if run.accuracy is None else run.accuracy,
          '-' if run.live_accuracy is None else run.live_accuracy,
          {True: 'yes', False: 'no', None: '-'}[run.blessed], run.pushed_version or '-')


def render(record: RunRecord, pipeline_name: str, history: Sequence[PastRun] = ()) -> str:
  """The report as one HTML page."""
  names = record.class_names
  display_names = dict(zip(record.label_names, names, strict=True))
  models = [('Model', record.model)] if record.student is None else [
      ('Teacher', record.model), ('Student (distilled)', record.student)]
  cleaning = record.cleaning
  return ENVIRONMENT.get_template(TEMPLATE).render(
      style=STYLE, pipeline_name=pipeline_name, run_id=record.run_id,
      cleaning=cleaning and {
          'rows': ([('read', cleaning['read'])]
                   + [(f'kept: {split}', count) for split, count in cleaning['kept'].items()]
                   + [(f'rejected: {reason}', count)
                      for reason, count in cleaning['rejected'].items()]
                   + [(f'modified: {step}', count)
                      for step, count in cleaning['modified'].items()]),
          'report_path': cleaning['report_path'], 'rejected_path': cleaning['rejected_path']},
      spans=record.spans and {'newest': record.spans['newest'],
                              'trained_on': span_range(record.spans['window'])},
      drift=record.drift and {'verdict': record.drift['verdict'],
                              'rows': _drift_rows(record.drift['measurements'])},
      distributions=(charts.distributions(_cleaned_examples(record.examples_uri), display_names)
                     if record.examples_uri else None),
      rejected=_rejected_rows(cleaning.get('rejected_path')) if cleaning else [],
      statistics=_statistics(record.statistics_uri, display_names),
      anomalies=_anomalies(record.anomalies_uri),
      models=[_model(title, model, names) for title, model in models],
      mistakes_per_class=MISTAKES_PER_CLASS,
      history=[_history_row(run) for run in history],
      history_chart=charts.history(history))


def write_report(record: RunRecord, pipeline_name: str, pipeline_root: str,
                 history: Sequence[PastRun] = ()) -> str:
  """Writes the run's report.html; returns its path."""
  path = report_path(pipeline_root, record.run_id)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(render(record, pipeline_name, history))
  return path
