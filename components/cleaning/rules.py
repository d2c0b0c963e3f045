"""Row-level cleaning: one raw record in, a kept candidate or a rejection with a reason out.

Pure Python, no Beam: the Beam pipeline (`transforms.py`) maps these functions over records.
"""

import html
import re
import unicodedata
from typing import Dict, List, NamedTuple, Optional, Tuple

from models.settings import IngestionSettings

# Rejection reason codes (stable: they key the cleaning report and rejected.jsonl).
UNDECODABLE = 'undecodable'
MALFORMED = 'malformed'
EMPTY_TEXT = 'empty_text'
MISSING_LABEL = 'missing_label'
UNKNOWN_LABEL = 'unknown_label'
TOO_LONG = 'too_long'
DUPLICATE = 'duplicate'
CONFLICTING_LABELS = 'conflicting_labels'
REJECTION_REASONS = (UNDECODABLE, MALFORMED, EMPTY_TEXT, MISSING_LABEL, UNKNOWN_LABEL, TOO_LONG,
                     DUPLICATE, CONFLICTING_LABELS)

# The split of IngestionSettings.golden_pattern's file: kept whole, as an eval file is.
GOLDEN_SPLIT = 'golden'

# Modification step names (the report counts kept rows each step changed).
REPAIRED_ENCODING = 'repaired_encoding'
NORMALIZED_UNICODE = 'normalized_unicode'
STRIPPED_HTML = 'stripped_html'
STRIPPED_CONTROL_CHARS = 'stripped_control_chars'
COLLAPSED_WHITESPACE = 'collapsed_whitespace'
REPLACED_TOKENS = 'replaced_tokens'
TRUNCATED = 'truncated'

# A tag starts with a letter, '/' or '!' right after '<', so "a < b" is left alone.
_HTML_TAG = re.compile(r'<[A-Za-z/!][^<>]*>')
_WHITESPACE = re.compile(r'\s+')
# An entity without its '&': '#39;' or 'quot;' not preceded by '&' or a word character.
_BROKEN_ENTITY = re.compile(r'(?<![&\w])(#\d{1,5}|quot|amp|lt|gt|apos|nbsp);')
_MAX_ESCAPING_LEVELS = 3
# Undecodable bytes survive decoding as lone surrogates (errors='surrogateescape').
_SURROGATES = re.compile('[\udc80-\udcff]')


class RawRecord(NamedTuple):
  """One record as read: its fields, or the reason it could not be parsed."""
  source: str  # file path
  record_number: int  # 1-based line number of the record's first line (JSONL: line number)
  split: str  # the input split it was read for ('train' / 'eval'), or '' for hash splitting
  raw: str  # the record's text as read, for rejected.jsonl
  fields: Optional[Dict[str, object]]  # None when malformed
  error: str = ''  # what was malformed


class Candidate(NamedTuple):
  """A cleaned row that passed the row-level checks (duplicates are decided later)."""
  text: str
  label: str
  split: str
  source: str
  record_number: int
  raw: str
  modified: Tuple[str, ...]


class Rejection(NamedTuple):
  reason: str
  detail: str
  source: str
  record_number: int
  raw: str
  split: str  # the input split the row was read for, as in RawRecord

  def to_json_dict(self, max_raw_chars: Optional[int] = None) -> Dict[str, object]:
    # Undecodable bytes are shown as \xNN escapes, so the line stays valid UTF-8 JSON.
    raw = self.raw.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')
    return {'reason': self.reason, 'detail': self.detail, 'source': self.source,
            'record_number': self.record_number, 'split': self.split, 'raw': raw[:max_raw_chars]}


def clean_text(text: str, settings: IngestionSettings) -> Tuple[str, List[str]]:
  """Applies the configured cleaning steps; returns the text and the steps that changed it."""
  steps = []

  def apply(step: str, enabled: bool, function) -> None:
    nonlocal text
    if enabled:
      cleaned = function(text)
      if cleaned != text:
        steps.append(step)
        text = cleaned

  apply(NORMALIZED_UNICODE, settings.normalize_unicode,
        lambda t: unicodedata.normalize('NFKC', t))
  apply(STRIPPED_HTML, settings.strip_html, _strip_html)
  apply(STRIPPED_CONTROL_CHARS, settings.strip_control_chars, _strip_control_chars)
  apply(COLLAPSED_WHITESPACE, settings.collapse_whitespace,
        lambda t: _WHITESPACE.sub(' ', t).strip())
  apply(REPLACED_TOKENS, bool(settings.replacements),
        lambda t: _replace_tokens(t, settings.replacements))
  return text, steps


def _strip_html(text: str) -> str:
  """Entities first, then tags: markup that arrives escaped ('&lt;b&gt;', or twice escaped,
  '&amp;lt;b&amp;gt;') becomes tags, which are then removed. Entities that lost their '&'
  ('#39;', 'quot;': common in scraped news) are repaired."""
  for _ in range(_MAX_ESCAPING_LEVELS):
    unescaped = html.unescape(text)
    if unescaped == text:
      break
    text = unescaped
  text = html.unescape(_BROKEN_ENTITY.sub(r'&\1;', text))
  return _HTML_TAG.sub(' ', text)


def _strip_control_chars(text: str) -> str:
  # Category C* minus ordinary whitespace (tabs and newlines become spaces later).
  return ''.join(ch for ch in text
                 if ch in '\t\n\r' or not unicodedata.category(ch).startswith('C'))


def _replace_tokens(text: str, replacements: Tuple[Tuple[str, str], ...]) -> str:
  mapping = dict(replacements)
  return ' '.join(mapping.get(word, word) for word in text.split(' '))


def to_candidate(record: RawRecord, settings: IngestionSettings):
  """A Candidate, or a Rejection saying why the record cannot be used."""
  def reject(reason: str, detail: str) -> Rejection:
    return Rejection(reason, detail, record.source, record.record_number, record.raw,
                     record.split)

  if record.fields is None:
    return reject(MALFORMED, record.error)

  modified = []
  values = [_as_text(record.fields.get(column)) for column in settings.text_columns]
  label = _as_text(record.fields.get(settings.label_column))
  if any(_SURROGATES.search(value) for value in values + [label]):
    if not settings.repair_undecodable:
      return reject(UNDECODABLE, 'invalid UTF-8 bytes')
    values = [_SURROGATES.sub('\ufffd', value) for value in values]
    label = _SURROGATES.sub('\ufffd', label)
    modified.append(REPAIRED_ENCODING)

  cleaned_values = []
  for value in values:
    cleaned, steps = clean_text(value, settings)
    cleaned_values.append(cleaned)
    modified.extend(step for step in steps if step not in modified)
  text = ' '.join(value for value in cleaned_values if value)
  if not text:
    return reject(EMPTY_TEXT, 'no text left after cleaning')

  label = label.strip()
  if not label:
    return reject(MISSING_LABEL, f'column {settings.label_column!r} is empty')
  if settings.label_names and label not in settings.label_names:
    return reject(UNKNOWN_LABEL, f'label {label!r} is not one of {list(settings.label_names)}')

  if len(text) > settings.max_text_chars:
    if not settings.truncate_long_text:
      return reject(TOO_LONG, f'{len(text)} characters > max_text_chars {settings.max_text_chars}')
    text = text[:settings.max_text_chars]
    modified.append(TRUNCATED)

  return Candidate(text, label, record.split, record.source, record.record_number, record.raw,
                   tuple(modified))


def _as_text(value) -> str:
  if value is None:
    return ''
  if isinstance(value, bool):
    return str(value).lower()
  return value if isinstance(value, str) else str(value)


def resolve_duplicates(text: str, candidates: List[Candidate]):
  """Decides rows that share one cleaned text: yields the kept Candidate and Rejections.

  Same text with different labels: every copy is rejected. Same label: one copy is kept, the one
  read for the eval (or golden) split if any (so a given eval file stays whole), else the first
  read.
  """
  del text  # the grouping key; every candidate carries it
  ordered = sorted(candidates, key=lambda c: (c.split not in ('eval', GOLDEN_SPLIT), c.source,
                                              c.record_number))
  labels = sorted({c.label for c in ordered})
  if len(labels) > 1:
    for c in ordered:
      yield Rejection(CONFLICTING_LABELS, f'the same text has labels {labels}', c.source,
                      c.record_number, c.raw, c.split)
    return
  kept = ordered[0]
  yield kept
  for c in ordered[1:]:
    yield Rejection(DUPLICATE, f'same text as {kept.source}:{kept.record_number}', c.source,
                    c.record_number, c.raw, c.split)
