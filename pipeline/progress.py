"""Readable local runs: one line per component start and end (with its duration) instead of pages
of library logging. `quiet_logging` keeps errors, warnings raised by this project's own code and
the component progress; everything else TF, Beam, TFX and absl log is dropped. The Trainer's
per-epoch lines (Keras, on stdout) and the final summary are unaffected.

A component that runs longer than HEARTBEAT_SECONDS says so every HEARTBEAT_SECONDS, with what is
known of how far it has come; the heartbeat ends with the component (or its first error). The
libraries report no progress of their own here: Beam's DirectRunner (in_memory) runs each bundle in
the calling thread, asks for no progress reports and hands out counters only once the pipeline has
ended, and TFT, TFDV and TFMA log nothing while their Beam pipeline runs. What is known: the fused
stage Beam's runner is at (it names each at DEBUG; its transforms' top-level labels say the phase:
CleanAndSplit, Analyze, GenerateStatistics, ExtractEvaluateAndWriteResults...) and what this
project's code logs to a `*.progress` logger (the ingestion's rows read so far).
"""

import logging
import os
import re
import sys
import threading
import time
import warnings
from typing import Optional

from absl import logging as absl_logging

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What LocalDagRunner logs around every node.
_COMPONENT_EVENT = re.compile(r'Component (\S+) is (running|finished)\.')
HEARTBEAT_SECONDS = 30
# The FnApiRunner logs 'Running bundle for stage <fused stage name>' here, at DEBUG.
BEAM_STAGE_LOGGER = 'apache_beam.runners.portability.fn_api_runner.fn_runner.run_bundle'
_BEAM_STAGE_PREFIX = 'Running bundle for stage '
# A transform's top-level label in a fused stage name, whose parts read '(Label/Sub/...)' or
# '(ref_AppliedPTransform_Label-Sub-..._<id>)'; PCollections ('ref_PCollection_...') are skipped.
_TOP_LABEL = re.compile(r'\((?:ref_AppliedPTransform_)?(?!ref_)([A-Za-z]\w*?)(?:[-/\[(]|_\d+\))')
_STAGE_LABELS_SHOWN = 3
# Loggers whose INFO records say how far a long step has come (e.g. the ingestion's reads).
PROGRESS_LOGGER_SUFFIX = '.progress'


def stage_labels(stage_name: str) -> str:
  """The distinct top-level labels of the transforms in a Beam fused stage, first ones first."""
  labels = list(dict.fromkeys(_TOP_LABEL.findall(stage_name)))
  return ', '.join(labels[:_STAGE_LABELS_SHOWN] + (['...'] if labels[_STAGE_LABELS_SHOWN:] else []))


def _duration(seconds: float) -> str:
  return f'{seconds:.0f} s' if seconds < 120 else f'{seconds / 60:.1f} min'


class ComponentProgress(logging.Filter):
  """Turns LocalDagRunner's component events into progress lines, with a still-running line every
  `heartbeat_seconds` while a component runs; drops library noise."""

  def __init__(self, total_components: int, stream=None,
               heartbeat_seconds: float = HEARTBEAT_SECONDS):
    super().__init__()
    self._total = total_components
    self._stream = stream or sys.stdout
    self._heartbeat_seconds = heartbeat_seconds
    self._started = {}
    self._lock = threading.Lock()  # one line at a time from the run and the heartbeat
    self._finished = threading.Event()  # set: no component is running
    self._finished.set()
    # What is known of the running component: its Beam stage's labels, the bundles Beam has run
    # and the latest `*.progress` message.
    self._stage, self._bundles, self._detail = '', 0, ''

  def filter(self, record: logging.LogRecord) -> bool:
    if record.name == BEAM_STAGE_LOGGER:
      if record.msg.startswith(_BEAM_STAGE_PREFIX):
        self._bundles += 1
        self._stage = stage_labels(record.getMessage()[len(_BEAM_STAGE_PREFIX):].split('\n')[0])
        self._detail = ''  # said of the stage before
      return False
    if record.name.endswith(PROGRESS_LOGGER_SUFFIX) and record.levelno == logging.INFO:
      self._detail = record.getMessage()
      return False
    event = _COMPONENT_EVENT.fullmatch(record.getMessage())
    if event:
      self._report(*event.groups())
      return False
    if record.levelno >= logging.ERROR:
      self.stop()  # the component is failing, and says why: nothing more to wait for
      return True
    own_code = (record.pathname.startswith(REPO_ROOT)
                and os.sep + '.venv' + os.sep not in record.pathname)
    return record.levelno >= logging.WARNING and own_code

  def stop(self) -> None:
    """Ends the heartbeat of the running component, if any."""
    self._finished.set()

  def _print(self, line: str, unless: Optional[threading.Event] = None) -> None:
    with self._lock:
      if unless is not None and unless.is_set():  # the component ended while the line was made
        return
      self._stream.write(f'[{time.strftime("%H:%M:%S")}] {line}\n')
      self._stream.flush()

  def _report(self, component: str, state: str) -> None:
    now = time.monotonic()
    if state == 'running':
      self._started[component] = now
      self._print(f'({len(self._started)}/{self._total}) {component} ...')
      self._stage, self._bundles, self._detail = '', 0, ''
      self.stop()  # a component whose end was not logged says no more
      self._finished = threading.Event()
      threading.Thread(target=self._heartbeat, args=(component, now, self._finished),
                       name=f'progress-{component}', daemon=True).start()
    else:
      self.stop()
      self._print(f'{component} done in {now - self._started.get(component, now):.1f} s')

  def _heartbeat(self, component: str, started: float, finished: threading.Event) -> None:
    while not finished.wait(self._heartbeat_seconds):
      known = [f'Beam: {self._stage} (bundle {self._bundles})' if self._stage else '',
               self._detail]
      self._print(f'{component}: still running ({_duration(time.monotonic() - started)})'
                  + ''.join(f'; {part}' for part in known if part), unless=finished)


def quiet_logging(total_components: int) -> None:
  """Routes all Python logging through one filtered handler (see silence_before_imports too)."""
  root = logging.getLogger()
  stop_heartbeats()  # an earlier run's, which may have ended in a failure
  for handler in list(root.handlers):
    root.removeHandler(handler)
  handler = logging.StreamHandler(sys.stderr)
  handler.setFormatter(logging.Formatter('%(levelname)s %(name)s: %(message)s'))
  handler.addFilter(ComponentProgress(total_components))
  root.addHandler(handler)
  root.setLevel(logging.INFO)
  logging.getLogger(BEAM_STAGE_LOGGER).setLevel(logging.DEBUG)  # the heartbeat names the stage
  # absl and TensorFlow attach handlers of their own; send their records to the root instead.
  for name in ('absl', 'tensorflow'):
    logger = logging.getLogger(name)
    logger.handlers = []
    logger.propagate = True
  # Through absl's own setting: libraries that silence absl for a moment restore this value.
  absl_logging.set_verbosity(absl_logging.INFO)
  logging.getLogger('tensorflow').setLevel(logging.INFO)


def stop_heartbeats() -> None:
  """Ends the still-running lines of quiet_logging's runs: their pipeline is over."""
  for handler in logging.getLogger().handlers:
    for progress_filter in handler.filters:
      if isinstance(progress_filter, ComponentProgress):
        progress_filter.stop()


def silence_before_imports() -> None:
  """What must happen before TensorFlow and its dependencies are imported."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')  # TF's C++ start-up messages
  warnings.simplefilter('ignore')  # deprecation and future warnings of libraries
