"""The report's charts: matplotlib PNGs embedded as data URIs, so the page opens offline, each with
alt text that says what it shows (and, where a chart has few numbers, the numbers). Charts over
classes stay readable from 2 to 20 classes: the figure grows with the classes, long names are cut
on the axes (the alt text has them whole), crowded axes turn their labels upright, and legends sit
outside the plotted area. A chart over time with a single point per series is a sentence instead.

Figures are made without pyplot, whose global registry would keep each one until closed.
"""

import base64
import collections
import dataclasses
import io
import math
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure

from pipeline.run_record import ACCURACY_METRIC, CONFUSION_PLOT, ModelRecord, confusion_counts

CALIBRATION_PLOT = 'calibrationHistogramBuckets'
RELIABILITY_BINS = 10
RELIABILITY_COLUMNS = 5  # panels per row: one per class
# Class names longer than this are cut on the axes.
AXIS_NAME_CHARS = 18
# Roughly how wide a character of a 10-point tick label is, to tell whether labels fit side by
# side.
CHAR_INCHES = 0.075


@dataclasses.dataclass(frozen=True)
class Chart:
  """A figure and its alt text. Without a figure (too few points to draw), the alt text is the
  sentence the page shows instead."""
  figure: Optional[Figure]
  alt: str

  @property
  def src(self) -> str:
    """The figure as a PNG data: URI."""
    buffer = io.BytesIO()
    self.figure.savefig(buffer, format='png', dpi=100, bbox_inches='tight')
    return f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def _axis_name(name: str) -> str:
  return name if len(name) <= AXIS_NAME_CHARS else name[:AXIS_NAME_CHARS - 1] + '…'


def _name_classes(axis, positions, names: Sequence[str], inches_per_class: float) -> None:
  """Class names as the ticks of a category axis, cut to AXIS_NAME_CHARS: level while they fit
  side by side, upright when they would run into each other."""
  labels = [_axis_name(name) for name in names]
  fits = axis.axis_name == 'y' or max(map(len, labels)) * CHAR_INCHES < inches_per_class
  axis.set_ticks(positions, labels, rotation=0 if fits else 90)


def distributions(splits: Dict[str, Tuple[List[str], List[int]]],
                  display_names: Dict[str, str]) -> Optional[Chart]:
  """Per split: each class's share, and the histogram of words per text."""
  if not splits:
    return None
  names = sorted({label for labels, _ in splits.values() for label in labels},
                 key=lambda label: (list(display_names).index(label)
                                    if label in display_names else len(display_names), label))
  # A class takes the width of its bars (one per split), at least 0.35 inches.
  labels_width = max(4.5, len(names) * max(0.35, 0.15 * len(splits)))
  figure = Figure(figsize=(labels_width + 5, 3.8), layout='constrained')
  by_label, by_length = figure.subplots(1, 2, width_ratios=(labels_width, 4.5))
  width = 0.8 / len(splits)
  for index, (split, (labels, lengths)) in enumerate(splits.items()):
    counts = collections.Counter(labels)
    shares = [counts[name] / len(labels) if labels else 0.0 for name in names]
    by_label.bar(np.arange(len(names)) + index * width, shares, width, label=split)
    if lengths:
      by_length.hist(lengths, bins=np.arange(0, min(max(lengths), 120) + 5, 4), density=True,
                     histtype='step', linewidth=1.5, color=f'C{index}')
  display = [display_names.get(name, name) for name in names]
  _name_classes(by_label.xaxis, np.arange(len(names)) + width * (len(splits) - 1) / 2, display,
                labels_width / len(names))
  by_label.set_title('labels (share of the split)')
  by_length.set_title('text length (words)')
  # One legend for both panels, above them: inside, it hid bars.
  figure.legend(*by_label.get_legend_handles_labels(), loc='outside upper center',
                ncols=len(splits))
  return Chart(figure, f"Bar chart of the share of each class ({', '.join(display)}) and "
                       f"histogram of words per text, for the splits {', '.join(splits)}.")


def confusion_matrix(plots: dict, names: List[str]) -> Optional[Chart]:
  confusion = plots.get('', {}).get(CONFUSION_PLOT)
  if not confusion:
    return None
  size = len(names)
  matrix = np.zeros((size, size))
  for (actual, predicted), count in confusion_counts(confusion).items():
    if 0 <= actual < size and 0 <= predicted < size:
      matrix[actual, predicted] = count
  # Cells shrink from 0.8 to 0.5 inches as classes are added, and their counts with them.
  cell = max(0.5, min(0.8, 5.6 / size))
  figure = Figure(figsize=(cell * size + 2.5, cell * size + 2), layout='constrained')
  axes = figure.subplots()
  axes.imshow(matrix, cmap='Blues')
  for (actual, predicted), count in np.ndenumerate(matrix):
    axes.text(predicted, actual, f'{count:.0f}', ha='center', va='center',
              fontsize='medium' if cell > 0.6 else 'x-small',
              color='white' if count > matrix.max() / 2 else 'black')
  _name_classes(axes.xaxis, range(size), names, cell)
  _name_classes(axes.yaxis, range(size), names, cell)
  axes.set_xlabel('predicted')
  axes.set_ylabel('actual')
  axes.set_title('confusion matrix (eval split)')
  correct = int(np.trace(matrix))
  return Chart(figure, f'Confusion matrix of the classes {", ".join(names)} on the eval split: '
                       f'{correct} of {int(matrix.sum())} examples on the diagonal (predicted '
                       'class = actual class).')


def reliability(plots: dict, names: List[str]) -> Optional[Chart]:
  """Mean predicted probability against the observed frequency, per class (one-vs-rest), from
  TFMA's calibration histogram re-binned into RELIABILITY_BINS: a panel per class, as twenty
  curves on one panel cannot be told apart."""
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
    curves[class_id, names[class_id] if class_id < len(names) else sub_key] = (
        predictions[used] / examples[used], labels[used] / examples[used])
  if not curves:
    return None
  columns = min(len(curves), RELIABILITY_COLUMNS)
  rows = math.ceil(len(curves) / columns)
  figure = Figure(figsize=(2.3 * columns + 0.6, 2.3 * rows + 0.8), layout='constrained')
  panels = list(figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False).flat)
  for axes, ((_, name), (predicted, observed)) in zip(panels, sorted(curves.items()),
                                                      strict=False):
    axes.plot([0, 1], [0, 1], linestyle=':', color='grey')
    axes.plot(predicted, observed, marker='o', markersize=3)
    axes.set_title(_axis_name(name), fontsize='medium')
    axes.set_aspect('equal')
  for axes in panels[len(curves):]:  # the last row's empty places
    axes.remove()
  figure.supxlabel('mean predicted probability')
  figure.supylabel('observed frequency')
  figure.suptitle('reliability per class, one against the rest (eval split)')
  return Chart(figure, f"Reliability curves of {', '.join(name for _, name in sorted(curves))} on "
                       'the eval split, a panel each: the mean predicted probability against how '
                       'often the class was the answer; the dotted diagonal is perfect '
                       'calibration.')


def slices(model: ModelRecord) -> Optional[Chart]:
  sliced = sorted((name, values) for name, values in model.metrics.items()
                  if name != 'overall' and ACCURACY_METRIC in values)
  if not sliced:
    return None
  figure = Figure(figsize=(6, 0.45 * len(sliced) + 1), layout='constrained')
  axes = figure.subplots()
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
  return Chart(figure, 'Accuracy per text length on the eval split: ' + '; '.join(
      f'{label} {accuracy:.3f}' for label, accuracy in zip(labels, accuracies, strict=True)) + '.')


def _points_at(series: Dict[Tuple[str, str], List[Tuple[int, float]]], run: str) -> str:
  """'loss 0.4100 and accuracy 0.8400 at step 500': the single point of each of `run`'s series."""
  values = [(name, points[0]) for (of, name), points in series.items() if of == run]
  return (' and '.join(f'{name} {value:.4f}' for name, (_, value) in values)
          + f' at step {values[0][1][0]}')


def training_curves(series: Dict[Tuple[str, str], List[Tuple[int, float]]],
                    scalars: Sequence[str]) -> Optional[Chart]:
  """(run, scalar) -> (training step, value): a panel per scalar with the training curve and
  the validation points, at the steps they were measured; a sentence while no series has two
  points."""
  if not series:
    return None
  if all(len(points) < 2 for points in series.values()):
    runs = [(run, said) for run, said in (('validation', 'validation'), ('train', 'training'))
            if any(of == run for of, _ in series)]
    return Chart(None, 'One point so far: ' + '; '.join(
        f'{said} {_points_at(series, run)}' for run, said in runs) + '; curves need two or more.')
  figure = Figure(figsize=(11, 3.8), layout='constrained')
  legend = {}  # label -> line, from every panel: a run may lack one scalar
  for plot, name in zip(figure.subplots(1, len(scalars), squeeze=False)[0], scalars, strict=True):
    for run, label, style in (('train', 'training (mean since the previous point)', '.-'),
                              ('validation', 'validation (after an evaluation round)', 'o-')):
      if (run, name) in series:
        steps, values = zip(*series[run, name], strict=True)
        [legend[label]] = plot.plot(steps, values, style, label=label)
    plot.set_xlabel('training step')
    plot.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    plot.set_title(name)
  figure.legend(list(legend.values()), list(legend), loc='outside upper center', ncols=2)
  return Chart(figure, f"Training curves: {' and '.join(scalars)} of the training data every few "
                       'steps and of the validation data after each evaluation round, against the '
                       'training step.')


def history(runs) -> Optional[Chart]:
  """Over the pipeline's runs (history.PastRun, oldest first): the candidate's and the live
  model's accuracy, pushed runs marked; and each drift measure as a share of its threshold. A
  sentence while no series has two points."""
  scored = [(index, run) for index, run in enumerate(runs, start=1) if run.accuracy is not None]
  drift = collections.defaultdict(list)  # feature -> (run, value / threshold)
  for index, run in enumerate(runs, start=1):
    for measure in run.drift:
      if measure['value'] is not None:
        drift[measure['feature']].append((index, measure['value'] / measure['threshold']))
  if not scored and not drift:
    return None
  if len(scored) < 2 and all(len(points) < 2 for points in drift.values()):
    said = (f': accuracy {scored[0][1].accuracy:.4f} on its eval split'
            if len(runs) == 1 and scored else
            ', too few with an accuracy or a drift measure to draw')
    return Chart(None, f"{'One run' if len(runs) == 1 else f'{len(runs)} runs'} so far{said}; "
                       'the history chart needs two or more.')
  figure = Figure(figsize=(11, 3.8), layout='constrained')
  accuracy_axes, drift_axes = figure.subplots(1, 2)
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
  for feature, points in sorted(drift.items()):
    drift_axes.plot(*zip(*points, strict=True), marker='o', label=feature)
  drift_axes.axhline(1.0, color='#cf222e', linestyle=':', label='threshold')
  drift_axes.set_title('drift against the previous span (share of threshold)')
  for axes in (accuracy_axes, drift_axes):
    axes.set_xlabel('run')
    axes.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    if axes.get_legend_handles_labels()[0]:
      axes.legend(fontsize='small', loc='upper left', bbox_to_anchor=(0, -0.2), ncols=2)
  return Chart(figure, f'Over the {len(runs)} runs of this pipeline: the candidate\'s and the '
                       'live model\'s accuracy on each run\'s eval split, pushed runs circled; '
                       'and each drift measure divided by its threshold (above 1: flagged).')
