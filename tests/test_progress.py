"""The local run's progress lines and its filtering of library logging."""

import io
import logging

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
