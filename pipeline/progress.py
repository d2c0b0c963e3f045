"""Readable local runs: one line per component start and end (with its duration) instead of pages
of library logging. `quiet_logging` keeps errors, warnings raised by this project's own code and
the component progress; everything else TF, Beam, TFX and absl log is dropped. The Trainer's
per-epoch lines (Keras, on stdout) and the final summary are unaffected.
"""

import logging
import os
import re
import sys
import time
import warnings

from absl import logging as absl_logging

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What LocalDagRunner logs around every node.
_COMPONENT_EVENT = re.compile(r'Component (\S+) is (running|finished)\.')


class ComponentProgress(logging.Filter):
  """Turns LocalDagRunner's component events into progress lines; drops library noise."""

  def __init__(self, total_components: int, stream=None):
    super().__init__()
    self._total = total_components
    self._stream = stream or sys.stdout
    self._started = {}

  def filter(self, record: logging.LogRecord) -> bool:
    event = _COMPONENT_EVENT.fullmatch(record.getMessage())
    if event:
      self._report(*event.groups())
      return False
    if record.levelno >= logging.ERROR:
      return True
    own_code = (record.pathname.startswith(REPO_ROOT)
                and os.sep + '.venv' + os.sep not in record.pathname)
    return record.levelno >= logging.WARNING and own_code

  def _report(self, component: str, state: str) -> None:
    now = time.monotonic()
    clock = time.strftime('%H:%M:%S')
    if state == 'running':
      self._started[component] = now
      position = f'{len(self._started)}/{self._total}'
      line = f'[{clock}] ({position}) {component} ...'
    else:
      line = f'[{clock}] {component} done in {now - self._started.get(component, now):.1f} s'
    print(line, file=self._stream, flush=True)


def quiet_logging(total_components: int) -> None:
  """Routes all Python logging through one filtered handler (see silence_before_imports too)."""
  root = logging.getLogger()
  for handler in list(root.handlers):
    root.removeHandler(handler)
  handler = logging.StreamHandler(sys.stderr)
  handler.setFormatter(logging.Formatter('%(levelname)s %(name)s: %(message)s'))
  handler.addFilter(ComponentProgress(total_components))
  root.addHandler(handler)
  root.setLevel(logging.INFO)
  # absl and TensorFlow attach handlers of their own; send their records to the root instead.
  for name in ('absl', 'tensorflow'):
    logger = logging.getLogger(name)
    logger.handlers = []
    logger.propagate = True
  # Through absl's own setting: libraries that silence absl for a moment restore this value.
  absl_logging.set_verbosity(absl_logging.INFO)
  logging.getLogger('tensorflow').setLevel(logging.INFO)


def silence_before_imports() -> None:
  """What must happen before TensorFlow and its dependencies are imported."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')  # TF's C++ start-up messages
  warnings.simplefilter('ignore')  # deprecation and future warnings of libraries
