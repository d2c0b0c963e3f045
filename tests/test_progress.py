"""The local run's progress lines and its filtering of library logging."""

import io
import logging
import time

import apache_beam as beam

from components.cleaning import transforms
from pipeline import progress


def record(message: str, level: int = logging.INFO, pathname: str = '/elsewhere/lib.py'):
  return logging.LogRecord('absl', level, pathname, 1, message, None, None)


def test_component_events_become_progress_lines():
  stream = io.StringIO()
  progress_filter = progress.ComponentProgress(total_components=10, stream=stream)
  assert not progress_filter.filter(record('Component Transform is running.'))
  assert not progress_filter.filter(record('Component Transform is finished.'))
  lines = stream.getvalue().splitlines()
  assert lines[0].endswith('(1/10) Transform ...')
  assert 'Transform done in ' in lines[1] and lines[1].endswith(' s')


def test_library_noise_is_dropped_but_errors_and_own_warnings_pass():
  progress_filter = progress.ComponentProgress(total_components=1, stream=io.StringIO())
  assert not progress_filter.filter(record('Using deployment config'))
  assert not progress_filter.filter(record('deprecated', logging.WARNING))
  assert progress_filter.filter(record('executor failed', logging.ERROR))
  own_file = progress.REPO_ROOT + '/components/cleaning/component.py'
  assert progress_filter.filter(record('rows rejected', logging.WARNING, own_file))


def test_a_beam_stage_is_named_by_its_transforms_top_level_labels():
  # As the FnApiRunner names the stage that reads the data in Transform's analysis (shortened).
  stage = ('(((((ref_PCollection_PCollection_9_split/Read)+(TFXIOReadAndDecode[AnalysisIndex0]/'
           'RawRecordBeamSource/ReadRawRecords/Process))+(ref_AppliedPTransform_TFXIOReadAndDecode-'
           'AnalysisIndex0-RawRecordToRecordBatch_37))+(ref_AppliedPTransform_Analyze-'
           'GetRecordBatchSize-AnalysisIndex0-_49))+(ref_AppliedPTransform_FlattenAnalysisDatasets_'
           '312))+(Analyze/SumTotalBytes[AnalysisIndex0]/CombinePerKey/Precombine)')
  assert progress.stage_labels(stage) == 'TFXIOReadAndDecode, Analyze, FlattenAnalysisDatasets'
  assert progress.stage_labels(stage + '+(ref_AppliedPTransform_GenerateStats-X_3)').endswith(
      'FlattenAnalysisDatasets, ...')


def still_running_lines(stream: io.StringIO):
  return [line for line in stream.getvalue().splitlines() if 'still running' in line]


def test_a_long_component_says_it_is_still_running_until_it_finishes():
  stream = io.StringIO()
  progress_filter = progress.ComponentProgress(total_components=1, stream=stream,
                                               heartbeat_seconds=0.2)
  progress_filter.filter(record('Component Transform is running.'))
  time.sleep(0.9)
  progress_filter.filter(record('Component Transform is finished.'))
  lines = stream.getvalue().splitlines()
  assert len(still_running_lines(stream)) >= 2
  assert 'Transform: still running (' in lines[1]
  assert 'Transform done in ' in lines[-1]
  time.sleep(0.5)
  assert stream.getvalue().splitlines() == lines  # nothing after the end


def test_an_error_ends_the_heartbeat():
  stream = io.StringIO()
  progress_filter = progress.ComponentProgress(total_components=1, stream=stream,
                                               heartbeat_seconds=0.2)
  progress_filter.filter(record('Component Trainer is running.'))
  assert progress_filter.filter(record('Execution 8 failed.', logging.ERROR))
  time.sleep(0.5)
  assert not still_running_lines(stream)


def test_the_heartbeat_names_beam_stage_and_rows_read_of_a_real_pipeline():
  stream = io.StringIO()
  progress_filter = progress.ComponentProgress(total_components=1, stream=stream,
                                               heartbeat_seconds=0.3)
  handler = logging.StreamHandler(io.StringIO())
  handler.addFilter(progress_filter)
  root, stage_logger = logging.getLogger(), logging.getLogger(progress.BEAM_STAGE_LOGGER)
  levels = root.level, stage_logger.level
  # LocalDagRunner's events come through absl's logger, whose level earlier tests may have set.
  events = logging.getLogger('tests.component_events')
  root.addHandler(handler)
  root.setLevel(logging.INFO)
  stage_logger.setLevel(logging.DEBUG)

  def slow_rows(_):
    for row in range(8):
      time.sleep(0.1)
      yield row

  try:
    events.info('Component TextCleaningExampleGen is running.')
    with beam.Pipeline() as pipeline:  # the DirectRunner, in_memory as in local runs
      _ = (pipeline
           | beam.Create(['big.tsv'])
           | 'SlowRead' >> beam.FlatMap(
               lambda path: transforms.logging_progress(slow_rows(path), path, 0.05)))
    events.info('Component TextCleaningExampleGen is finished.')
  finally:
    root.removeHandler(handler)
    root.setLevel(levels[0])
    stage_logger.setLevel(levels[1])
  still_running = still_running_lines(stream)
  assert still_running, stream.getvalue()
  assert 'SlowRead' in still_running[-1] and 'rows of big.tsv so far' in still_running[-1]
