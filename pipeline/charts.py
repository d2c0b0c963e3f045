"""The report's charts: matplotlib PNGs embedded as data URIs, so the page opens offline, each with
alt text that says what it shows (and, where a chart has few numbers, the numbers)."""

import base64
import collections
import dataclasses
import io
import re
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib import pyplot

from pipeline.run_record import ACCURACY_METRIC, CONFUSION_PLOT, ModelRecord, confusion_counts

matplotlib.use('Agg')  # files, no display

CALIBRATION_PLOT = 'calibrationHistogramBuckets'
RELIABILITY_BINS = 10


@dataclasses.dataclass(frozen=True)
class Chart:
  src: str  # a data: URI
  alt: str


def _chart(figure, alt: str) -> Chart:
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=100, bbox_inches='tight')
  pyplot.close(figure)
  return Chart(f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}",
               alt)


def distributions(splits: Dict[str, Tuple[List[str], List[int]]],
                  display_names: Dict[str, str]) -> Optional[Chart]:
  """Per split: each class's share, and the histogram of words per text."""
  if not splits:
    return None
  figure, (by_label, by_length) = pyplot.subplots(1, 2, figsize=(11, 3.5))
  names = sorted({label for labels, _ in splits.values() for label in labels},
                 key=lambda label: (list(display_names).index(label)
                                    if label in display_names else len(display_names), label))
  width = 0.8 / len(splits)
  for index, (split, (labels, lengths)) in enumerate(splits.items()):
    counts = collections.Counter(labels)
    shares = [counts[name] / len(labels) if labels else 0.0 for name in names]
    by_label.bar(np.arange(len(names)) + index * width, shares, width, label=split)
    if lengths:
      by_length.hist(lengths, bins=np.arange(0, min(max(lengths), 120) + 5, 4), density=True,
                     histtype='step', linewidth=1.5, label=split)
  by_label.set_xticks(np.arange(len(names)) + width * (len(splits) - 1) / 2,
                      [display_names.get(name, name) for name in names],
                      rotation=30 if len(names) > 4 else 0)
  by_label.set_title('labels (share of the split)')
  by_length.set_title('text length (words)')
  for axes in (by_label, by_length):
    axes.legend()
  return _chart(figure, f"Bar chart of each class's share and histogram of words per text, for "
                        f"the splits {', '.join(splits)}.")


def confusion_matrix(plots: dict, names: List[str]) -> Optional[Chart]:
  confusion = plots.get('', {}).get(CONFUSION_PLOT)
  if not confusion:
    return None
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
  correct = int(np.trace(matrix))
  return _chart(figure, f'Confusion matrix on the eval split: {correct} of {int(matrix.sum())} '
                        f'examples on the diagonal (predicted class = actual class).')


def reliability(plots: dict, names: List[str]) -> Optional[Chart]:
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
    return None
  figure, axes = pyplot.subplots(figsize=(4.5, 4))
  axes.plot([0, 1], [0, 1], linestyle=':', color='grey', label='calibrated')
  for name, (predicted, observed) in curves.items():
    axes.plot(predicted, observed, marker='o', label=name)
  axes.set_xlabel('mean predicted probability')
  axes.set_ylabel('observed frequency')
  axes.set_title('reliability (eval split)')
  axes.legend(fontsize='small')
  return _chart(figure, f"Reliability curve of {', '.join(curves)} on the eval split: the mean "
                        'predicted probability against how often the class was the answer; the '
                        'dotted diagonal is perfect calibration.')


def slices(model: ModelRecord) -> Optional[Chart]:
  sliced = sorted((name, values) for name, values in model.metrics.items()
                  if name != 'overall' and ACCURACY_METRIC in values)
  if not sliced:
    return None
  figure, axes = pyplot.subplots(figsize=(6, 0.45 * len(sliced) + 1))
  accuracies = [values[ACCURACY_METRIC] for _, values in sliced]
  labels = [f"{name.split(':', 1)[-1]} (n={values.get('example_count', 0):.0f})"
            for name, values in sliced]
  axes.barh(range(len(sliced)), accuracies, color='#4c72b0')
  axes.set_yticks(range(len(sliced)), labels)
  for index, accuracy in enumerate(accuracies):
    axes.text(accuracy, index, f' {accuracy:.3f}', va='center')
  axes.set_xlim(0, 1.1)
  axes.invert_yaxis()
  axes.set_title('accuracy per text length (eval split)')
  return _chart(figure, 'Accuracy per text length on the eval split: ' + '; '.join(
      f'{label} {accuracy:.3f}' for label, accuracy in zip(labels, accuracies, strict=True)) + '.')


def training_curves(series: Dict[Tuple[str, str], List[Tuple[int, float]]],
                    scalars: Sequence[str]) -> Optional[Chart]:
  """(run, scalar) -> (evaluation round, value): one panel per scalar, a line per run."""
  if not series:
    return None
  figure, axes = pyplot.subplots(1, len(scalars), figsize=(11, 3.5))
  for plot, name in zip(axes, scalars, strict=True):
    for run in ('train', 'validation'):
      if (run, name) in series:
        steps, values = zip(*series[run, name], strict=True)
        plot.plot(np.array(steps) + 1, values, marker='o', label=run)
    plot.set_xlabel('evaluation round')
    plot.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    plot.set_title(name)
    plot.legend()
  return _chart(figure, f"Training curves: {' and '.join(scalars)} of the training and "
                        'validation data at each evaluation round.')


def history(runs) -> Optional[Chart]:
  """Over the pipeline's runs (history.PastRun, oldest first): the candidate's and the live
  model's accuracy, pushed runs marked; and each drift measure as a share of its threshold."""
  scored = [(index, run) for index, run in enumerate(runs, start=1) if run.accuracy is not None]
  drifted = [(index, run) for index, run in enumerate(runs, start=1) if run.drift]
  if not scored and not drifted:
    return None
  figure, (accuracy_axes, drift_axes) = pyplot.subplots(1, 2, figsize=(11, 3.5))
  if scored:
    accuracy_axes.plot([i for i, _ in scored], [r.accuracy for _, r in scored], marker='o',
                       label='candidate')
    live = [(i, r.live_accuracy) for i, r in scored if r.live_accuracy is not None]
    if live:
      accuracy_axes.plot(*zip(*live, strict=True), marker='s', linestyle='--',
                         label='live model, same examples')
    pushed = [(i, r.accuracy) for i, r in scored if r.pushed_version]
    if pushed:
      accuracy_axes.scatter(*zip(*pushed, strict=True), s=140, facecolors='none',
                            edgecolors='#1a7f37', label='pushed', zorder=3)
  accuracy_axes.set_title('accuracy on each run\'s eval split')
  measures = sorted({m['feature'] for _, run in drifted for m in run.drift})
  for feature in measures:
    points = [(i, m['value'] / m['threshold']) for i, run in drifted for m in run.drift
              if m['feature'] == feature and m['value'] is not None]
    if points:
      drift_axes.plot(*zip(*points, strict=True), marker='o', label=feature)
  drift_axes.axhline(1.0, color='#cf222e', linestyle=':', label='threshold')
  drift_axes.set_title('drift against the previous span (share of threshold)')
  for axes in (accuracy_axes, drift_axes):
    axes.set_xlabel('run')
    axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if axes.get_legend_handles_labels()[0]:
      axes.legend(fontsize='small')
  return _chart(figure, f'Over the {len(runs)} runs of this pipeline: the candidate\'s and the '
                        'live model\'s accuracy on each run\'s eval split, pushed runs circled; '
                        'and each drift measure divided by its threshold (above 1: flagged).')
