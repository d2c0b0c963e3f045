"""The report's charts for 2 and for 20 classes with long names, laid out by matplotlib's Agg
renderer: legends off the plotted area, class names neither on each other nor missing, counts
inside their cells, figures that grow with the classes, alt text that names every class; and the
charts over time, a sentence while each series has one point."""

import base64
import datetime
import itertools

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from pipeline import charts
from pipeline.history import PastRun
from pipeline.run_record import CONFUSION_PLOT

CLASS_COUNTS = (2, 20)


def class_names(count: int):
  return [f'class {index:02d}, whose display name is long' for index in range(count)]


def drawn(chart: charts.Chart):
  """The chart's renderer, after drawing its figure as the report's PNG is drawn."""
  assert base64.b64decode(chart.src.split(',', 1)[1]).startswith(b'\x89PNG')
  canvas = FigureCanvasAgg(chart.figure)
  canvas.draw()
  return canvas.get_renderer()


def assert_apart(boxes):
  for first, second in itertools.combinations(boxes, 2):
    assert not first.overlaps(second), (first, second)


def labelled_ticks(labels):
  return [label for label in labels if label.get_text()]


def distributions(count: int) -> charts.Chart:
  names = class_names(count)
  labels = [f'label{index}' for index in range(count)]
  splits = {'train': ([label for index, label in enumerate(labels) for _ in range(index + 3)],
                      [5, 8, 13, 21, 34]),
            'eval': (labels, [6, 9, 14])}
  return charts.distributions(splits, dict(zip(labels, names, strict=True)))


def confusion_matrix(count: int) -> charts.Chart:
  entries = [{'actualClassId': actual, 'predictedClassId': predicted,
              'numWeightedExamples': 480.0 if actual == predicted else float(actual + predicted)}
             for actual in range(count) for predicted in range(count)]
  return charts.confusion_matrix({'': {CONFUSION_PLOT: {'matrices': [{'entries': entries}]}}},
                                 class_names(count))


def reliability(count: int) -> charts.Chart:
  buckets = [{'lowerThresholdInclusive': low / 10, 'numWeightedExamples': 10.0,
              'totalWeightedLabel': low, 'totalWeightedRefinedPrediction': low + 0.5}
             for low in range(10)]
  return charts.reliability({f'classId:{index}': {charts.CALIBRATION_PLOT: {'buckets': buckets}}
                             for index in range(count)}, class_names(count))


@pytest.mark.parametrize('count', CLASS_COUNTS)
def test_the_label_chart_keeps_its_legend_off_the_bars_and_names_each_class_apart(count):
  chart = distributions(count)
  renderer = drawn(chart)
  [legend] = chart.figure.legends
  by_label, by_length = chart.figure.axes
  for axes in (by_label, by_length):
    assert not legend.get_window_extent(renderer).overlaps(axes.get_window_extent(renderer))
  ticks = labelled_ticks(by_label.get_xticklabels())
  assert len(ticks) == count
  assert_apart([tick.get_window_extent(renderer) for tick in ticks])
  for name in class_names(count):
    assert name in chart.alt


@pytest.mark.parametrize('count', CLASS_COUNTS)
def test_the_confusion_matrix_names_each_class_apart_and_fits_counts_in_cells(count):
  chart = confusion_matrix(count)
  renderer = drawn(chart)
  [axes] = chart.figure.axes
  for labels in (axes.get_xticklabels(), axes.get_yticklabels()):
    ticks = labelled_ticks(labels)
    assert len(ticks) == count
    assert_apart([tick.get_window_extent(renderer) for tick in ticks])
  area = axes.get_window_extent(renderer)
  cell = area.width / count
  counts = axes.texts
  assert len(counts) == count * count
  for text in counts:
    box = text.get_window_extent(renderer)
    assert box.width < cell and box.height < cell, text.get_text()
  for name in class_names(count):
    assert name in chart.alt


@pytest.mark.parametrize('count', CLASS_COUNTS)
def test_reliability_has_a_panel_per_class_with_its_name(count):
  chart = reliability(count)
  renderer = drawn(chart)
  panels = chart.figure.axes
  assert len(panels) == count
  assert_apart([axes.get_tightbbox(renderer) for axes in panels])
  assert [axes.get_title() for axes in panels] == [
      charts._axis_name(name) for name in class_names(count)]  # pylint: disable=protected-access
  for name in class_names(count):
    assert name in chart.alt


@pytest.mark.parametrize('draw', (distributions, confusion_matrix, reliability))
def test_charts_of_classes_grow_with_them(draw):
  few, many = (draw(count).figure.get_size_inches() for count in CLASS_COUNTS)
  assert many[0] > few[0]


def test_training_curves_put_validation_points_at_their_steps_and_the_legend_aside():
  train = [(step, 1.0 / step) for step in range(8, 161, 8)]
  series = {('train', 'loss'): train, ('train', 'accuracy'): train,
            ('validation', 'loss'): [(80, 0.5), (160, 0.4)],
            ('validation', 'accuracy'): [(80, 0.7), (160, 0.8)]}
  chart = charts.training_curves(series, ('loss', 'accuracy'))
  renderer = drawn(chart)
  [legend] = chart.figure.legends
  for axes in chart.figure.axes:
    assert axes.get_xlabel() == 'training step'
    training, validation = axes.get_lines()
    assert list(training.get_xdata()) == [step for step, _ in train]
    assert list(validation.get_xdata()) == [80, 160]
    assert not legend.get_window_extent(renderer).overlaps(axes.get_window_extent(renderer))


def test_training_curves_of_one_evaluation_round_are_a_sentence():
  series = {('train', 'loss'): [(8, 0.61)], ('train', 'accuracy'): [(8, 0.7)],
            ('validation', 'loss'): [(8, 0.52)], ('validation', 'accuracy'): [(8, 0.84)]}
  chart = charts.training_curves(series, ('loss', 'accuracy'))
  assert chart.figure is None
  assert chart.alt == ('One point so far: validation loss 0.5200 and accuracy 0.8400 '
                       'at step 8; training loss 0.6100 and accuracy 0.7000 at step 8; curves '
                       'need two or more.')
  training_only = {key: points for key, points in series.items() if key[0] == 'train'}
  assert charts.training_curves(training_only, ('loss', 'accuracy')).alt == (
      'One point so far: training loss 0.6100 and accuracy 0.7000 at step 8; curves need two or '
      'more.')


def test_the_training_curves_legend_has_every_run_when_a_panel_lacks_one():
  series = {('train', 'loss'): [(8, 0.6), (16, 0.5)], ('train', 'accuracy'): [(8, 0.7), (16, 0.8)],
            ('validation', 'loss'): [(8, 0.52), (16, 0.5)]}
  chart = charts.training_curves(series, ('loss', 'accuracy'))
  [legend] = chart.figure.legends
  assert [text.get_text() for text in legend.get_texts()] == [
      'training (mean since the previous point)', 'validation (after an evaluation round)']


def past_run(accuracy: float, pushed_version=None) -> PastRun:
  return PastRun(run_id='run', started=datetime.datetime(2026, 1, 1), outcome='trained',
                 spans=None, read=100, kept=100, rejected=0, drift=[], accuracy=accuracy,
                 live_accuracy=None, blessed=True, pushed_version=pushed_version)


def test_the_history_of_one_run_is_a_sentence_and_of_two_a_chart():
  chart = charts.history([past_run(0.84, '1')])
  assert chart.figure is None
  assert chart.alt == ('One run so far: accuracy 0.8400 on its eval split; the history chart '
                       'needs two or more.')
  chart = charts.history([past_run(0.84, '1'), past_run(0.86, '2')])
  renderer = drawn(chart)
  accuracy_axes, drift_axes = chart.figure.axes
  for axes in (accuracy_axes, drift_axes):
    legend = axes.get_legend()
    assert not legend.get_window_extent(renderer).overlaps(axes.get_window_extent(renderer))
