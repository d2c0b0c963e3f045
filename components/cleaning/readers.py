"""Reads raw files (CSV, TSV, JSON Lines; gzip by extension) into RawRecords, one per record.

Bytes are decoded as UTF-8 with errors='surrogateescape', so a record with invalid bytes is still
read and can be rejected (or repaired) by the cleaning rules instead of failing the whole file.
"""

import csv
import json
import sys
from typing import Iterator, List, Sequence

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from components.cleaning.rules import RawRecord

FORMATS = ('csv', 'tsv', 'jsonl')
_EXTENSIONS = {'.csv': 'csv', '.tsv': 'tsv', '.jsonl': 'jsonl', '.json': 'jsonl',
               '.ndjson': 'jsonl'}
_BOM = '\ufeff'

# Long texts are a cleaning decision (truncate or reject), not a parse error.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class InputError(ValueError):
  """An input that cannot be used at all (missing file, no such column, unknown format)."""


def detect_format(path: str, configured: str = '') -> str:
  if configured:
    if configured not in FORMATS:
      raise InputError(f'Unknown input format {configured!r}; expected one of {FORMATS}.')
    return configured
  name = path[:-3] if path.endswith('.gz') else path
  for extension, input_format in _EXTENSIONS.items():
    if name.endswith(extension):
      return input_format
  raise InputError(f'Cannot tell the format of {path!r} from its extension; set the input '
                   f'format to one of {FORMATS}.')


def match_files(patterns: Sequence[str]) -> List[str]:
  """Every file matching the globs, sorted; a glob that matches nothing is an InputError."""
  paths = []
  for pattern in patterns:
    matched = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    if not matched:
      raise InputError(f'No input file matches {pattern!r}.')
    paths.extend(matched)
  return paths


def check_headers(paths: Sequence[str], settings) -> None:
  """Fails early, with the file named, when a CSV/TSV header lacks a configured column."""
  for path in paths:
    input_format = detect_format(path, settings.input_format)
    if input_format == 'jsonl':
      continue
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as binary_file:
      lines = _Lines(binary_file)
      header = next(_csv_reader(lines, input_format), None)
    if header is not None:
      _check_columns(path, header, settings.text_columns, settings.label_column)


def _check_columns(path: str, header: List[str], text_columns: Sequence[str],
                   label_column: str) -> None:
  missing = [c for c in list(text_columns) + [label_column] if c not in header]
  if missing:
    raise InputError(f'{path}: no column {missing} in the header {header}.')


def _csv_reader(lines, input_format: str):
  # TSV files are taken as unquoted (a '"' is text); CSV fields may be quoted and span lines.
  return csv.reader(lines, delimiter='\t' if input_format == 'tsv' else ',', strict=True,
                    quoting=csv.QUOTE_NONE if input_format == 'tsv' else csv.QUOTE_MINIMAL)


class _Lines:
  """Iterates a binary file's decoded lines and remembers those consumed since the last take()."""

  def __init__(self, binary_file):
    self._file = binary_file
    self._pending = []
    self.line_number = 0

  def __iter__(self):
    return self

  def __next__(self) -> str:
    line = self._file.readline()
    if not line:
      raise StopIteration
    self.line_number += 1
    text = line.decode('utf-8', errors='surrogateescape')
    if self.line_number == 1 and text.startswith(_BOM):
      text = text[1:]
    self._pending.append(text)
    return text

  def take(self) -> str:
    raw = ''.join(self._pending)
    self._pending = []
    return raw


def read_records(path: str, split: str, input_format: str, text_columns: Sequence[str],
                 label_column: str) -> Iterator[RawRecord]:
  input_format = detect_format(path, input_format)
  with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as binary_file:
    lines = _Lines(binary_file)
    if input_format == 'jsonl':
      yield from _read_jsonl(path, split, lines)
    else:
      yield from _read_delimited(path, split, lines, input_format, text_columns, label_column)


def _read_jsonl(path: str, split: str, lines: _Lines) -> Iterator[RawRecord]:
  for line in lines:
    raw = lines.take()
    if not line.strip():
      continue  # a blank line is not a record
    try:
      fields = json.loads(line)
    except json.JSONDecodeError as e:
      yield RawRecord(path, lines.line_number, split, raw, None, f'invalid JSON: {e.msg}')
      continue
    if not isinstance(fields, dict):
      yield RawRecord(path, lines.line_number, split, raw, None, 'not a JSON object')
    else:
      yield RawRecord(path, lines.line_number, split, raw, fields)


def _read_delimited(path: str, split: str, lines: _Lines, input_format: str,
                    text_columns: Sequence[str], label_column: str) -> Iterator[RawRecord]:
  reader = _csv_reader(lines, input_format)
  try:
    header = next(reader)
  except StopIteration:
    return  # an empty file has no records
  lines.take()
  _check_columns(path, header, text_columns, label_column)

  while True:
    first_line = lines.line_number + 1
    try:
      row = next(reader)
    except StopIteration:
      return
    except csv.Error as e:
      yield RawRecord(path, first_line, split, lines.take(), None, f'broken quoting: {e}')
      continue
    raw = lines.take()
    if not row:
      continue  # a blank line is not a record
    if len(row) != len(header):
      yield RawRecord(path, first_line, split, raw, None,
                      f'expected {len(header)} fields, got {len(row)}')
    else:
      yield RawRecord(path, first_line, split, raw, dict(zip(header, row, strict=True)))
