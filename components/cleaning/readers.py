"""Reads raw files (CSV, TSV, JSON Lines; gzip by extension) into RawRecords, one per record.

Bytes are decoded as UTF-8 with errors='surrogateescape', so a record with invalid bytes is still
read and can be rejected (or repaired) by the cleaning rules instead of failing the whole file.

A compressed file that ends early, fails its CRC or cannot be decompressed is never read in part:
`find_corruption` says why before any of its records are read, and reading it raises
CorruptFileError naming the file.
"""

import bz2
import contextlib
import csv
import gzip
import json
import lzma
import sys
import zlib
from typing import Iterator, List, Sequence, get_args

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from components.cleaning.rules import RawRecord
from models.settings import InputFormat

FORMATS = tuple(name for name in get_args(InputFormat) if name)  # '': from the extension
_EXTENSIONS = {'.csv': 'csv', '.tsv': 'tsv', '.jsonl': 'jsonl', '.json': 'jsonl',
               '.ndjson': 'jsonl'}
_BOM = '\ufeff'
# The report's reason for a whole file left out (reject_corrupt_files).
CORRUPT_FILE = 'corrupt_file'
# Python's readers, not Beam's CompressedFile: Beam stops quietly where the data stops, so a cut
# file reads as a whole, shorter one; these raise EOFError. GzipFile also checks each member's
# CRC and length, reads concatenated members (`cat a.gz b.gz`), skips trailing zero padding and
# rejects any other trailing bytes.
_DECOMPRESSORS = {
    CompressionTypes.GZIP: lambda raw: gzip.GzipFile(fileobj=raw, mode='rb'),
    CompressionTypes.BZIP2: bz2.BZ2File,
    CompressionTypes.LZMA: lzma.LZMAFile,
}
_CHUNK_BYTES = 1 << 20

# Long texts are a cleaning decision (truncate or reject), not a parse error.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class InputError(ValueError):
  """An input that cannot be used at all (missing file, no such column, unknown format)."""


class CorruptFileError(InputError):
  """A compressed input that ends early, fails its integrity check or cannot be decompressed."""

  def __init__(self, message: str, detail: str = ''):
    # Only the message is in args: Beam re-raises a worker's error as type(e)(args[0] + step).
    super().__init__(message)
    self.detail = detail  # what is wrong, without the path


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
  """Fails early, with the file named, when a CSV/TSV header lacks a configured column (files
  without a header row take their column names from the settings, which are checked there)."""
  for path in paths:
    input_format = detect_format(path, settings.input_format)
    if input_format == 'jsonl' or settings.column_names:
      continue
    try:
      with open_checked(path) as binary_file:
        header = next(_csv_reader(_Lines(binary_file), input_format), None)
    except CorruptFileError:
      continue  # the pipeline reports it, with every other corrupt file
    if header is not None:
      _check_columns(path, header, settings.text_columns, settings.label_column)


def _corruption(error: BaseException) -> str:
  """What a decompression error says is wrong with the file; '' for an I/O error."""
  if isinstance(error, EOFError):
    return f'ends early, cut off ({error})'
  # GzipFile's and BZ2File's format errors are OSErrors without an errno; one with an errno is a
  # real I/O error (permissions, a lost mount): not the file's fault, so not a reason to reject it.
  if isinstance(error, OSError) and error.errno is not None:
    return ''
  return f'cannot be decompressed: {error}'


@contextlib.contextmanager
def _naming_corruption(path: str) -> Iterator[None]:
  """Turns a decompression error in the block into a CorruptFileError naming the file."""
  try:
    yield
  except (EOFError, OSError, zlib.error, lzma.LZMAError) as e:
    detail = _corruption(e)
    if not detail:
      raise
    raise CorruptFileError(f'{path}: {detail}', detail) from e


@contextlib.contextmanager
def open_checked(path: str) -> Iterator:
  """Opens a file as FileSystems.open does, decompressing by extension; a decompression error
  while it is read raises CorruptFileError."""
  compression = CompressionTypes.detect_compression_type(path)
  if compression == CompressionTypes.UNCOMPRESSED:
    with FileSystems.open(path, compression_type=compression) as binary_file:
      yield binary_file
    return
  with _naming_corruption(path), contextlib.ExitStack() as stack:
    if compression in _DECOMPRESSORS:
      raw = stack.enter_context(
          FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED))
      yield stack.enter_context(_DECOMPRESSORS[compression](raw))
    else:
      # A compression Python has no reader for (.zst, .deflate): Beam's, unchecked for cuts.
      yield stack.enter_context(FileSystems.open(path, compression_type=compression))


def find_corruption(path: str) -> str:
  """Why a compressed file cannot be read whole, or '' if it can (or is not compressed, or is
  .zst or .deflate, which are not checked).

  Decompresses the whole file, so that it is judged before any of its records is used.
  """
  if CompressionTypes.detect_compression_type(path) not in _DECOMPRESSORS:
    return ''
  # Python's readers take an empty file for empty data; gzip(1) and the like call it cut, as even
  # empty data compresses to a header and a trailer.
  if FileSystems.match([path])[0].metadata_list[0].size_in_bytes == 0:
    return 'ends early, cut off (0 bytes, not even a header)'
  try:
    with open_checked(path) as binary_file:
      while binary_file.read(_CHUNK_BYTES):
        pass
  except CorruptFileError as e:
    return e.detail
  return ''


def _check_columns(path: str, header: List[str], text_columns: Sequence[str],
                   label_column: str) -> None:
  missing = [c for c in list(text_columns) + [label_column] if c not in header]
  if missing:
    raise InputError(f'{path}: no column {missing} in the header {header}. A file without a '
                     'header row needs its columns named (column_names in the dataset file).')


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
                 label_column: str, column_names: Sequence[str] = ()) -> Iterator[RawRecord]:
  """The file's records; raises CorruptFileError if it turns out to be corrupt (callers that must
  not use part of a file check it with find_corruption first). CSV/TSV files have a header row,
  or none when `column_names` names their columns."""
  input_format = detect_format(path, input_format)
  with open_checked(path) as binary_file:
    lines = _Lines(binary_file)
    if input_format == 'jsonl':
      yield from _read_jsonl(path, split, lines)
    else:
      yield from _read_delimited(path, split, lines, input_format, text_columns, label_column,
                                 column_names)


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
                    text_columns: Sequence[str], label_column: str,
                    column_names: Sequence[str]) -> Iterator[RawRecord]:
  reader = _csv_reader(lines, input_format)
  if column_names:
    header = list(column_names)
  else:
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
    if first_line == 1 and column_names and row == header:
      continue  # the columns were named, yet the file has this header row too: not a record
    if len(row) != len(header):
      yield RawRecord(path, first_line, split, raw, None,
                      f'expected {len(header)} fields, got {len(row)}')
    else:
      yield RawRecord(path, first_line, split, raw, dict(zip(header, row, strict=True)))
