"""Spans: data that arrives over time, in folders or files numbered by TFX's {SPAN} placeholder.

TFX's driver resolves the newest span (its RollingRange of one span, the only range ExampleGen
takes). This module adds what a scheduled run needs around it: which spans exist, the newest
`window` spans to train on, the span before the newest to compare it with, and one clear line for
each way a span layout can be wrong (no span, a {SPAN} that is not a number, a span with no
files, a gap in the window). The span listing is written here, not taken from TFX, whose
matching helpers are private and stop at the newest span.
"""

import dataclasses
import os
import re
from typing import Dict, List, Optional, Tuple

from tfx.dsl.io import fileio

from components.cleaning.readers import InputError, match_files
from components.cleaning.rules import GOLDEN_SPLIT
from models.settings import SPAN_SPEC, IngestionSettings

# Output splits of a span run, besides 'train' (the newest span's training rows) and 'eval':
# the older spans by their distance from the newest. The first one is also what the newest span
# is compared with for drift, so it is read even when the window is one span.
OLDER_SPAN_SPLIT = 'train_minus_{}'


def older_span_splits(window: int) -> List[str]:
  return [OLDER_SPAN_SPLIT.format(k) for k in range(1, max(window - 1, 1) + 1)]


def training_splits(window: int) -> List[str]:
  """The splits a span run trains on: the newest span and the window's older ones."""
  return ['train'] + older_span_splits(window)[:window - 1]


@dataclasses.dataclass(frozen=True)
class SpanPlan:
  newest: int
  window: Tuple[int, ...]  # the spans trained on, oldest first
  baseline: Optional[int]  # the span before the newest, for drift; None: the newest is the first

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


def pattern_for_span(pattern: str, span: int) -> str:
  """`pattern` with {SPAN} (or {SPAN:N}, zero-padded to N digits) replaced by `span`."""
  def number(match):
    width = match.group(1)
    return str(span).zfill(int(width[1:])) if width else str(span)
  return SPAN_SPEC.sub(number, pattern)


def _glob_and_regex(pattern: str) -> Tuple[str, re.Pattern]:
  glob = SPAN_SPEC.sub('*', pattern)
  regex = ''
  for part in re.split(r'(\{SPAN(?::[^}]*)?\}|\*|\?)', pattern):
    regex += {'*': '[^/]*', '?': '[^/]'}.get(part, '(?P<span>[^/]*)' if SPAN_SPEC.fullmatch(part)
                                              else re.escape(part))
  return glob, re.compile(regex)


def spans_on_disk(data_root: str, pattern: str) -> Dict[int, List[str]]:
  """span -> the files of `pattern` (under data_root) for that span, sorted. An InputError when no
  file matches, a {SPAN} matches something that is not a number, or a span's folder (where the
  folder holds the {SPAN}) has no matching file: a span still being written, or misnamed files."""
  full_pattern = os.path.join(data_root, pattern)
  spans: Dict[int, List[str]] = {}
  for path, span in _matches(full_pattern):
    spans.setdefault(span, []).append(path)
  folder_pattern = os.path.dirname(full_pattern)
  if SPAN_SPEC.search(folder_pattern):
    for folder, span in _matches(folder_pattern):
      if span not in spans:
        raise InputError(f'Span {span} has no file matching {os.path.basename(full_pattern)!r} '
                         f'in its folder {folder}.')
  if not spans:
    raise InputError(f'No span matches {full_pattern!r}.')
  return {span: sorted(files) for span, files in sorted(spans.items())}


def _matches(full_pattern: str) -> List[Tuple[str, int]]:
  """(path, span) of each path (file or folder) matching `full_pattern`."""
  glob, regex = _glob_and_regex(full_pattern)
  matches = []
  for path in fileio.glob(glob):
    path = path.rstrip('/')
    match = regex.fullmatch(path)
    if match is None:  # the glob's '*' for {SPAN} crossed a folder: not this layout
      continue
    if not match['span'].isdigit():
      raise InputError(f"{{SPAN}} in {full_pattern!r} matches {match['span']!r} in {path}, "
                       'which is not a span number.')
    matches.append((path, int(match['span'])))
  return matches


def plan(settings: IngestionSettings, newest: int) -> SpanPlan:
  """The spans a run over newest span `newest` trains on and compares with; an InputError names a
  span of the window that has no files (a gap), or a newest span that does not exist."""
  on_disk = spans_on_disk(settings.data_root, settings.train_pattern)
  if newest not in on_disk:
    raise InputError(f'Span {newest} has no file matching '
                     f'{pattern_for_span(settings.train_pattern, newest)!r} in '
                     f'{settings.data_root}.')
  first = min(on_disk)
  window = tuple(range(max(first, newest - settings.window + 1), newest + 1))
  missing = [span for span in window if span not in on_disk]
  if missing:
    raise InputError(
        f'The window of {settings.window} spans ending at span {newest} has a gap: span(s) '
        f'{", ".join(map(str, missing))} have no file matching '
        f'{os.path.join(settings.data_root, settings.train_pattern)!r} (spans on disk: '
        f'{", ".join(map(str, on_disk))}).')
  older = [span for span in on_disk if span < newest]
  return SpanPlan(newest=newest, window=window, baseline=max(older) if older else None)


def input_files(settings: IngestionSettings, span_plan: SpanPlan) -> Dict[str, List[str]]:
  """Input split -> files for a span run: the newest span's training files ('train', or '' when
  the eval split is carved out of them by a hash), its eval files (the eval pattern's newest span,
  or a fixed file), a golden file, and each older span's split. An older split whose span does
  not exist (before the first span) has no files: it is written empty."""
  def files(pattern: str, span: Optional[int] = None) -> List[str]:
    return match_files([os.path.join(
        settings.data_root, pattern if span is None else pattern_for_span(pattern, span))])

  newest = span_plan.newest
  result = {}
  if settings.eval_pattern:
    result['train'] = files(settings.train_pattern, newest)
    result['eval'] = files(settings.eval_pattern,
                           newest if SPAN_SPEC.search(settings.eval_pattern) else None)
  else:
    result[''] = files(settings.train_pattern, newest)
  if settings.golden_pattern:
    result[GOLDEN_SPLIT] = files(settings.golden_pattern)
  for k, split in enumerate(older_span_splits(settings.window), start=1):
    # The first older split is the baseline (in a window, the span before the newest).
    span = span_plan.baseline if k == 1 else newest - k
    in_use = span is not None and (k == 1 or span in span_plan.window)
    result[split] = files(settings.train_pattern, span) if in_use else []
  return result
