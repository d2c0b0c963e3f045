"""report.html: one page per run for a person to open in a browser.

What the data was (rows read, kept and rejected by reason, label and length distributions, a few
rejected rows, TFDV's statistics and anomalies), how the model did (metrics with class names, the
confusion matrix, accuracy per length slice, reliability), against the last blessed model, how
training went (the Trainer's TensorBoard scalars), and whether and where the model was pushed.
Everything is read back from the run's artifacts (run_summary.RunSummary). Charts are matplotlib
PNGs inside the page, so the file is self-contained and opens offline: TFDV's and TFMA's own
HTML views load their scripts from the internet.
"""

import base64
import collections
import glob
import html
import io
import json
import os
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import matplotlib
import matplotlib.ticker
import numpy as np
import tensorflow as tf
import tensorflow_data_validation as tfdv
from matplotlib import pyplot
from tensorboard.backend.event_processing import event_accumulator

from components.data_gate import describe_anomalies_at
from models import features
from pipeline.run_summary import (ACCURACY_METRIC, CONFUSION_PLOT, ModelSummary, RunSummary,
                                  cleaned_examples, confusion_counts, format_metrics_table,
                                  push_status, span_range)

matplotlib.use('Agg')  # files, no display

REPORT_FILE = 'report.html'
REJECTED_SHOWN = 10
CALIBRATION_PLOT = 'calibrationHistogramBuckets'
RELIABILITY_BINS = 10
SCALARS = (('epoch_loss', 'loss'), ('epoch_accuracy', 'accuracy'))
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
"""


def report_path(pipeline_root: str, run_id: str) -> str:
  """<pipeline root>/reports/<run id>/report.html (the run id's ':' made '-' for file systems
  and URLs that dislike it)."""
  return os.path.join(pipeline_root, 'reports', re.sub(r'[^\w.-]', '-', run_id), REPORT_FILE)


def _png(figure) -> str:
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=100, bbox_inches='tight')
  pyplot.close(figure)
  encoded = base64.b64encode(buffer.getvalue()).decode('ascii')
  return f'<img alt="" src="data:image/png;base64,{encoded}">'


def _table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
  def cell(value):
    if isinstance(value, float):
      return f'<td class="n">{value:.4f}</td>'
    if isinstance(value, int):
      return f'<td class="n">{value:,}</td>'
    return f'<td>{html.escape(str(value))}</td>'
  head = ''.join(f'<th>{html.escape(name)}</th>' for name in header)
  body = ''.join('<tr>' + ''.join(cell(value) for value in row) + '</tr>' for row in rows)
  return f'<table><tr>{head}</tr>{body}</table>'


# --- data ----------------------------------------------------------------------------------


def _cleaned_examples(examples_uri: str) -> Dict[str, Tuple[List[str], List[int]]]:
  """Split -> (labels, words per text) of the cleaned examples."""
  splits = {}
  for folder in sorted(glob.glob(os.path.join(examples_uri, 'Split-*'))):
    split = os.path.basename(folder)[len('Split-'):]
    pairs = list(cleaned_examples(examples_uri, split))
    splits[split] = ([label for _, label in pairs], [len(text.split()) for text, _ in pairs])
  return splits


def _distributions(examples_uri: str, display_names: Dict[str, str]) -> str:
  splits = _cleaned_examples(examples_uri)
  if not splits:
    return ''
  figure, (by_label, by_length) = pyplot.subplots(1, 2, figsize=(11, 3.5))
  names = sorted({label for labels, _ in splits.values() for label in labels},
                 key=lambda label: (list(display_names).index(label)
                                    if label in display_names else len(display_names), label))
  width = 0.8 / len(splits)
  for index, (split, (labels, lengths)) in enumerate(splits.items()):
    counts = collections.Counter(labels)
    shares = [counts[name] / len(labels) for name in names]
    by_label.bar(np.arange(len(names)) + index * width, shares, width, label=split)
    by_length.hist(lengths, bins=np.arange(0, min(max(lengths), 120) + 5, 4), density=True,
                   histtype='step', linewidth=1.5, label=split)
  by_label.set_xticks(np.arange(len(names)) + width * (len(splits) - 1) / 2,
                      [display_names.get(name, name) for name in names],
                      rotation=30 if len(names) > 4 else 0)
  by_label.set_title('labels (share of the split)')
  by_length.set_title('text length (words)')
  for axes in (by_label, by_length):
    axes.legend()
  return _png(figure)


def _rejected_rows(path: Optional[str]) -> str:
  if not path or not os.path.exists(path):
    return ''
  rows = []
  with open(path, encoding='utf-8') as f:
    for line in f:
      if len(rows) == REJECTED_SHOWN:
        break
      row = json.loads(line)
      rows.append((row['reason'], row.get('detail', ''),
                   f"{row['source']}:{row['record_number']}", str(row['raw'])[:300]))
  if not rows:
    return '<p>No row was rejected.</p>'
  table = _table(('reason', 'detail', 'file:record', 'raw record'), rows).replace(
      '<td>', '<td class="raw">')
  return (f'<h3>The first {len(rows)} rejected rows</h3>{table}'
          f'<p>All: <code>{html.escape(path)}</code></p>')


def _statistics(statistics_uri: Optional[str]) -> str:
  if not statistics_uri:
    return ''
  rows = []
  for path in sorted(glob.glob(os.path.join(statistics_uri, 'Split-*', 'FeatureStats.pb'))):
    split = os.path.basename(os.path.dirname(path))[len('Split-'):]
    for dataset in tfdv.load_stats_binary(path).datasets:
      for feature in dataset.features:
        stats = feature.string_stats
        name = feature.path.step[-1]
        frequent = (', '.join(f'{v.value} ({v.frequency:.0f})' for v in stats.top_values[:6])
                    if name == features.LABEL_KEY else '')
        rows.append((split, name, int(dataset.num_examples), int(stats.common_stats.num_missing),
                     int(stats.unique), f'{stats.avg_length:.1f}', frequent))
  return ('<h3>TFDV statistics</h3>' + _table(
      ('split', 'feature', 'examples', 'missing', 'unique', 'mean length (chars)',
       'most frequent labels'), rows)) if rows else ''


def _anomalies(anomalies_uri: Optional[str]) -> str:
  if not anomalies_uri:
    return ''
  splits = [os.path.basename(folder)[len('Split-'):]
            for folder in sorted(glob.glob(os.path.join(anomalies_uri, 'Split-*')))]
  problems = describe_anomalies_at(anomalies_uri, splits)
  if not problems:
    return '<h3>TFDV anomalies</h3><p class="ok">None: every split matches the schema.</p>'
  return ('<h3>TFDV anomalies</h3><ul class="bad">'
          + ''.join(f'<li>{html.escape(problem)}</li>' for problem in problems) + '</ul>')


def _spans(summary: RunSummary) -> str:
  """The spans read, and each drift measure against its threshold; '' without spans."""
  if not summary.spans:
    return ''
  plan = summary.spans
  parts = ['<h3>Spans and drift</h3>',
           f"<p>Newest span {plan['newest']} (its eval split judges the models); trained on "
           f"{html.escape(span_range(plan['window']))}.</p>"]
  if summary.drift:
    parts.append(f"<p>{html.escape(summary.drift['verdict'])}.</p>")
    parts.append(_table(('feature', 'measure', 'value', 'threshold', 'flagged'), [
        (m['feature'], m['measure'], '-' if m['value'] is None else m['value'],
         '-' if m['threshold'] is None else m['threshold'], 'yes' if m['flagged'] else 'no')
        for m in summary.drift['measurements']]))
  return ''.join(parts)


def _data_section(summary: RunSummary, display_names: Dict[str, str]) -> str:
  parts = ['<h2>Data</h2>']
  cleaning = summary.cleaning
  if cleaning:
    rows = [('read', cleaning['read'])]
    rows += [(f'kept: {split}', count) for split, count in cleaning['kept'].items()]
    rows += [(f'rejected: {reason}', count) for reason, count in cleaning['rejected'].items()]
    rows += [(f'modified: {step}', count) for step, count in cleaning['modified'].items()]
    parts.append(_table(('rows', 'count'), rows))
    parts.append(f"<p>Cleaning report: <code>{html.escape(cleaning['report_path'])}</code></p>")
  parts.append(_spans(summary))
  if summary.examples_uri:
    parts.append(_distributions(summary.examples_uri, display_names))
  if cleaning:
    parts.append(_rejected_rows(cleaning.get('rejected_path')))
  parts.append(_statistics(summary.statistics_uri))
  parts.append(_anomalies(summary.anomalies_uri))
  return ''.join(parts)


# --- the model -----------------------------------------------------------------------------


def _confusion_matrix(plots: dict, names: List[str]) -> str:
  confusion = plots.get('', {}).get(CONFUSION_PLOT)
  if not confusion:
    return ''
  size = len(names)
  matrix = np.zeros((size, size))
  for (actual, predicted), count in confusion_counts(confusion).items():
    if 0 <= actual < size and 0 <= predicted < size:
      matrix[actual, predicted] = count
  figure, axes = pyplot.subplots(figsize=(0.8 * size + 2.5, 0.7 * size + 2))
  axes.imshow(matrix, cmap='Blues')
  for (actual, predicted), count in np.ndenumerate(matrix):
    axes.text(predicted, actual, f'{count:.0f}', ha='center', va='center',
              color='white' if count > matrix.max() / 2 else 'black')
  axes.set_xticks(range(size), names, rotation=30 if size > 4 else 0)
  axes.set_yticks(range(size), names)
  axes.set_xlabel('predicted')
  axes.set_ylabel('actual')
  axes.set_title('confusion matrix (eval split)')
  return _png(figure)


def _reliability(plots: dict, names: List[str]) -> str:
  """Mean predicted probability against the observed frequency, per class (one-vs-rest), from
  TFMA's calibration histogram re-binned into RELIABILITY_BINS."""
  curves = {}
  for sub_key, by_name in plots.items():
    match = re.fullmatch(r'classId:(\d+)', sub_key)
    if not match or CALIBRATION_PLOT not in by_name:
      continue
    examples, labels, predictions = (np.zeros(RELIABILITY_BINS) for _ in range(3))
    for bucket in by_name[CALIBRATION_PLOT].get('buckets', []):
      # JSON omits zeros, and spells the edge buckets' thresholds '-Infinity' and 'Infinity'.
      low = float(bucket.get('lowerThresholdInclusive', 0.0))
      if not 0.0 <= low < 1.0:
        continue
      index = min(int(low * RELIABILITY_BINS), RELIABILITY_BINS - 1)
      examples[index] += float(bucket.get('numWeightedExamples', 0.0))
      labels[index] += float(bucket.get('totalWeightedLabel', 0.0))
      predictions[index] += float(bucket.get('totalWeightedRefinedPrediction', 0.0))
    used = examples > 0
    class_id = int(match[1])
    curves[names[class_id] if class_id < len(names) else sub_key] = (
        predictions[used] / examples[used], labels[used] / examples[used])
  if not curves:
    return ''
  figure, axes = pyplot.subplots(figsize=(4.5, 4))
  axes.plot([0, 1], [0, 1], linestyle=':', color='grey', label='calibrated')
  for name, (predicted, observed) in curves.items():
    axes.plot(predicted, observed, marker='o', label=name)
  axes.set_xlabel('mean predicted probability')
  axes.set_ylabel('observed frequency')
  axes.set_title('reliability (eval split)')
  axes.legend(fontsize='small')
  return _png(figure)


def _slices(model: ModelSummary) -> str:
  sliced = sorted((name, values) for name, values in model.metrics.items()
                  if name != 'overall' and ACCURACY_METRIC in values)
  if not sliced:
    return ''
  figure, axes = pyplot.subplots(figsize=(6, 0.45 * len(sliced) + 1))
  accuracies = [values[ACCURACY_METRIC] for _, values in sliced]
  axes.barh(range(len(sliced)), accuracies, color='#4c72b0')
  axes.set_yticks(range(len(sliced)), [
      f"{name.split(':', 1)[-1]} (n={values.get('example_count', 0):.0f})"
      for name, values in sliced])
  for index, accuracy in enumerate(accuracies):
    axes.text(accuracy, index, f' {accuracy:.3f}', va='center')
  axes.set_xlim(0, 1.1)
  axes.invert_yaxis()
  axes.set_title('accuracy per text length (eval split)')
  return _png(figure)


def _training_curves(model_run_dir: Optional[str]) -> str:
  if not model_run_dir:
    return ''
  series = {}
  for run in ('train', 'validation'):
    folder = os.path.join(model_run_dir, run)
    if not os.path.isdir(folder):
      continue
    events = event_accumulator.EventAccumulator(
        folder, size_guidance={event_accumulator.TENSORS: 0})
    events.Reload()
    for tag, name in SCALARS:
      if tag in events.Tags()['tensors']:
        series[run, name] = [(event.step, float(tf.make_ndarray(event.tensor_proto)))
                             for event in events.Tensors(tag)]
  if not series:
    return ''
  figure, axes = pyplot.subplots(1, len(SCALARS), figsize=(11, 3.5))
  for plot, (_, name) in zip(axes, SCALARS, strict=True):
    for run in ('train', 'validation'):
      if (run, name) in series:
        steps, values = zip(*series[run, name], strict=True)
        plot.plot(np.array(steps) + 1, values, marker='o', label=run)
    plot.set_xlabel('evaluation round')
    plot.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    plot.set_title(name)
    plot.legend()
  return _png(figure) + (f'<p>TensorBoard: <code>tensorboard --logdir '
                         f'{html.escape(model_run_dir)}</code></p>')


def _verdict(model: ModelSummary) -> str:
  if model.blessed:
    verdict = '<p class="ok">Blessed: it passed every check.</p>'
  elif model.blessed is False:
    verdict = ('<p class="bad">Not blessed: '
               + html.escape('; '.join(model.not_blessed_because) or 'see the Evaluator')
               + '.</p>')
  else:
    verdict = '<p>Not evaluated.</p>'
  return verdict + f'<p>Pushed to: {html.escape(push_status(model))}.</p>'


def _model_section(title: str, model: ModelSummary, names: List[str]) -> str:
  parts = [f'<h2>{html.escape(title)}</h2>', _verdict(model)]
  parts.append('<pre>' + html.escape('\n'.join(format_metrics_table(model.metrics, names)))
               + '</pre>')
  overall = model.metrics.get('overall', {})
  change = overall.get(f'{ACCURACY_METRIC}_diff')
  if change is not None and ACCURACY_METRIC in overall:
    parts.append('<h3>Against the last blessed model</h3>' + _table(
        ('', 'accuracy'), [('last blessed model', overall[ACCURACY_METRIC] - change),
                           ('this model', overall[ACCURACY_METRIC]), ('change', change)]))
  elif model.blessed is not None:
    parts.append('<p>No blessed model to compare with yet: this is the first.</p>')
  parts.append(_confusion_matrix(model.overall_plots, names)
               + _reliability(model.overall_plots, names))
  parts.append(_slices(model))
  parts.append('<h3>Training</h3>' + _training_curves(model.model_run_dir))
  if model.megabytes:
    parts.append(f'<p>Exported model: {model.megabytes:.0f} MB'
                 + (f'; {model.latency_ms:.2f} ms per text at batch 1 (median, timed after the '
                    'run on this machine)' if model.latency_ms is not None else '') + '.</p>')
  return ''.join(parts)


def render(summary: RunSummary, pipeline_name: str) -> str:
  """The report as one HTML page."""
  names = summary.class_names
  display_names = dict(zip(summary.label_names, names, strict=True))
  models = [('Model', summary.model)] if summary.student is None else [
      ('Teacher', summary.model), ('Student (distilled)', summary.student)]
  body = ''.join(_model_section(title, model, names) for title, model in models)
  return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
          f'<title>{html.escape(pipeline_name)} run {html.escape(summary.run_id)}</title>'
          f'<style>{STYLE}</style></head><body>'
          f'<h1>{html.escape(pipeline_name)}: run {html.escape(summary.run_id)}</h1>'
          + _verdict(summary.model) + _data_section(summary, display_names) + body
          + '</body></html>')


def write_report(summary: RunSummary, pipeline_name: str, pipeline_root: str) -> str:
  """Writes the run's report.html; returns its path."""
  path = report_path(pipeline_root, summary.run_id)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(render(summary, pipeline_name))
  return path
