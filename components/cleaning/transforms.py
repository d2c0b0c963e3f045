"""The ingestion Beam pipeline: read -> clean -> de-duplicate -> split -> write, with a report.

Used by the TFX component (`component.py`) and the preview command (`__main__.py`) alike.
Outputs, under the paths the caller gives:
  examples      <examples_dir>/Split-<split>/data_tfrecord-*.gz   gzipped tf.Examples (text, label)
  report        <report_path>   JSON: read, kept per split, rejected per reason, modified per step,
                                and the corrupt input files (below)
  rejected rows <rejected_path> JSON Lines: reason, detail, source, record_number, raw

A compressed input that ends early, fails its CRC or cannot be decompressed is checked whole
before its rows are read, so none of them is used. By default it is listed under the report's
'corrupt_files' and `check_usable` fails the run naming it; with reject_corrupt_files it is listed
under 'rejected_files' (by reason, 'corrupt_file') and the run goes on without it. Either way its
rows are in no count: read == kept + rejected holds for the rows of the files read.
"""

import hashlib
import json
import logging
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
import tensorflow as tf

from components.cleaning import readers, rules
from models import features
from models.settings import IngestionSettings

# The splits every run writes and needs rows in (with a golden file, its split too:
# `output_splits`); a span run also writes its older spans' (spans.older_span_splits).
SPLITS = ('train', 'eval')
REPORT_FILE = 'cleaning_report.json'
REJECTED_FILE = 'rejected.jsonl'
# How many rejected rows per reason the report quotes, and how much of each.
REPORT_EXAMPLES_PER_REASON = 3
REPORT_EXAMPLE_MAX_CHARS = 300
# The Read step's output for corrupt files (one dict per file: source, split, detail).
CORRUPT_FILES = 'corrupt_files'
# How often a long read logs the rows read so far. Beam's counters cannot be read while the
# pipeline runs; a local run's progress lines repeat this logger's latest message.
READ_PROGRESS_SECONDS = 10
_read_progress = logging.getLogger(__name__ + '.progress')


class IngestionError(RuntimeError):
  """The data cannot make a usable dataset, or rows were lost (the invariant is broken)."""


def output_splits(settings: IngestionSettings) -> Tuple[str, ...]:
  """The splits every run of these settings writes and needs rows in."""
  return SPLITS + ((rules.GOLDEN_SPLIT,) if settings.golden_pattern else ())


def hash_split(text: str, eval_percent: int) -> str:
  """Deterministic split from the cleaned text: copies of a text always land together."""
  bucket = int.from_bytes(hashlib.sha256(text.encode('utf-8')).digest()[:8], 'big') % 100
  return 'eval' if bucket < eval_percent else 'train'


def to_example(candidate: rules.Candidate, with_profile: bool = False) -> bytes:
  """The cleaned row as a tf.Example; `with_profile` adds what drift between spans is measured on:
  the number of words and the lower-cased words themselves."""
  def bytes_feature(values: Sequence[str]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode('utf-8')
                                                                 for v in values]))
  feature = {features.TEXT_KEY: bytes_feature([candidate.text]),
             features.LABEL_KEY: bytes_feature([candidate.label])}
  if with_profile:
    words = features.words_of(candidate.text)
    feature[features.WORDS_KEY] = bytes_feature(words)
    feature[features.WORD_COUNT_KEY] = tf.train.Feature(
        int64_list=tf.train.Int64List(value=[len(words)]))
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def build_report(read: int, kept: Dict[str, int], rejected: Dict[str, int],
                 modified: Dict[str, int], examples: Dict[str, List[dict]],
                 corrupt_files: Sequence[dict] = (), reject_corrupt_files: bool = False,
                 input_splits: Sequence[str] = (),
                 rejected_per_input_split: Optional[Dict[Tuple[str, str], int]] = None,
                 output_splits: Sequence[str] = SPLITS, spans: Optional[dict] = None) -> dict:
  """The cleaning report; raises IngestionError when rows are unaccounted for.

  corrupt_files (source, split, detail) go under 'rejected_files' if reject_corrupt_files, else
  under 'corrupt_files', which `check_usable` fails on. input_splits: the splits files were given
  for ('train', 'eval', or '' for the pool a hash split divides); rejected_per_input_split: the
  rejected rows by the input split they were read for. spans: a span run's SpanPlan, as a dict.
  """
  corrupt_files = sorted(corrupt_files, key=lambda f: f['source'])
  report = {
      'read': read,
      'kept': {split: kept.get(split, 0) for split in output_splits},
      'kept_total': sum(kept.values()),
      'rejected': {reason: rejected[reason] for reason in rules.REJECTION_REASONS
                   if reason in rejected},
      'rejected_total': sum(rejected.values()),
      'modified': dict(sorted(modified.items())),
      'rejected_examples': {reason: examples[reason] for reason in rules.REJECTION_REASONS
                            if reason in examples},
      # Whole files, apart from the rows: theirs could not be counted.
      'rejected_files': ({readers.CORRUPT_FILE: corrupt_files}
                         if reject_corrupt_files and corrupt_files else {}),
      'corrupt_files': [] if reject_corrupt_files else corrupt_files,
      'rejected_per_input_split': {
          split: {reason: count for (row_split, reason), count in sorted(
              (rejected_per_input_split or {}).items()) if row_split == split}
          for split in sorted(input_splits)},
      **({'spans': spans} if spans else {}),
  }
  if report['read'] != report['kept_total'] + report['rejected_total']:
    raise IngestionError(
        f"Rows unaccounted for: read {report['read']} != kept {report['kept_total']} + rejected "
        f"{report['rejected_total']}.")
  return report


def format_report(report: dict) -> str:
  lines = [f"Read {report['read']} rows; kept {report['kept_total']} {report['kept']}; "
           f"rejected {report['rejected_total']}."]
  lines += [f'  rejected {reason}: {count}' for reason, count in report['rejected'].items()]
  lines += [f'  modified {step}: {count}' for step, count in report['modified'].items()]
  lines += [f"  rejected file ({reason}): {f['source']}: {f['detail']}"
            for reason, files in report['rejected_files'].items() for f in files]
  lines += [f"  corrupt file: {f['source']}: {f['detail']}" for f in report['corrupt_files']]
  lines += [f'  warning: {warning}' for warning in warnings(report)]
  return '\n'.join(lines)


def eval_file_rows(report: dict) -> Optional[Tuple[int, int]]:
  """(rejected, read) rows of the eval files, or None when the eval split is a hash split."""
  # .get: reports written before this count existed (a cached ingestion) have none.
  per_split = report.get('rejected_per_input_split', {})
  if 'eval' not in per_split:
    return None
  rejected = sum(per_split['eval'].values())
  return rejected, report['kept']['eval'] + rejected


def eval_shrinkage_warning(report: dict) -> str:
  """A sentence when rows of the eval files were rejected, else ''."""
  rows = eval_file_rows(report)
  if not rows or not rows[0]:
    return ''
  rejected, read = rows
  reasons = ', '.join(f'{reason} {count}'
                      for reason, count in report['rejected_per_input_split']['eval'].items())
  return (f'the eval split lost {rejected} of the eval files\' {read} rows '
          f'({100 * rejected / read:.1f}%; {reasons}), so the model is judged on fewer rows')


def mostly_rejected_warning(report: dict) -> str:
  """A sentence when more than half of the rows read were rejected (a wrong column, label list
  or format is the usual cause), else ''."""
  read, rejected = report['read'], report['rejected_total']
  if not read or rejected * 2 <= read:
    return ''
  reasons = ', '.join(f'{reason} {count}' for reason, count in report['rejected'].items())
  return (f'most rows were rejected: {rejected} of {read} ({100 * rejected / read:.0f}%; '
          f'{reasons}); check the labels, columns and format the data is described with')


def warnings(report: dict) -> List[str]:
  return [warning for warning in (mostly_rejected_warning(report), eval_shrinkage_warning(report))
          if warning]


def check_usable(report: dict, max_eval_rejected_percent: float,
                 required_splits: Sequence[str] = SPLITS) -> None:
  """Raises IngestionError when an input file is corrupt (and not rejected by the settings), a
  required split has no rows to train or evaluate on, or more than `max_eval_rejected_percent` of
  the eval files' rows were rejected."""
  if report['corrupt_files']:
    files = '; '.join(f"{f['source']}: {f['detail']}" for f in report['corrupt_files'])
    raise IngestionError(
        f'Corrupt input file(s), so stopping rather than using part of the data: {files}. '
        'Replace them, or set reject_corrupt_files to leave them out.')
  if report['read'] == 0:
    rejected_files = sum(len(files) for files in report['rejected_files'].values())
    note = f'; {rejected_files} corrupt file(s) rejected' if rejected_files else ''
    raise IngestionError(f'The input has no records (empty files, or a header only{note}).')
  empty = [split for split in required_splits if report['kept'][split] == 0]
  if empty:
    raise IngestionError(
        f"No rows kept for split(s) {empty} (read {report['read']}, rejected "
        f"{report['rejected']}).")
  rows = eval_file_rows(report)
  if rows and rows[0] > max_eval_rejected_percent / 100 * rows[1]:
    raise IngestionError(
        f'{eval_shrinkage_warning(report).capitalize()}: more than max_eval_rejected_percent '
        f'({max_eval_rejected_percent:g}%). Fix the eval files (or the label names), or raise '
        'the limit.')


def _count_per_key(pcoll, label: str):
  return pcoll | f'Count{label}' >> beam.combiners.Count.PerElement()


@beam.ptransform_fn
def CleanAndSplit(pipeline, input_files: Dict[str, List[str]],  # pylint: disable=invalid-name
                  settings: IngestionSettings):
  """input_files: split ('train'/'eval', or '' for a hash split) -> paths.

  Returns a dict of PCollections: 'kept' (Candidates, split decided), 'rejected' (Rejections),
  'read' (one int: the number of records read), 'corrupt_files' (dicts: source, split, detail).
  """
  files = [(path, split) for split, paths in input_files.items() for path in paths]
  read_files = (
      pipeline
      | 'Files' >> beam.Create(files)
      # Files are independent: let the runner spread them over workers.
      | 'Reshuffle' >> beam.Reshuffle()
      | 'Read' >> beam.FlatMap(_read_file, settings).with_outputs(CORRUPT_FILES, main='records'))
  records = read_files.records

  checked = records | 'Clean' >> beam.Map(rules.to_candidate, settings)
  row_rejections = checked | 'RowRejections' >> beam.Filter(
      lambda r: isinstance(r, rules.Rejection))
  resolved = (
      checked
      | 'Candidates' >> beam.Filter(lambda r: isinstance(r, rules.Candidate))
      | 'KeyByText' >> beam.Map(lambda c: (c.text, c))
      | 'GroupByText' >> beam.GroupByKey()
      | 'ResolveDuplicates' >> beam.FlatMapTuple(rules.resolve_duplicates))
  duplicate_rejections = resolved | 'DuplicateRejections' >> beam.Filter(
      lambda r: isinstance(r, rules.Rejection))
  kept = (
      resolved
      | 'Kept' >> beam.Filter(lambda r: isinstance(r, rules.Candidate))
      | 'AssignSplit' >> beam.Map(
          lambda c: c if c.split else c._replace(split=hash_split(c.text, settings.eval_percent))))
  rejected = (row_rejections, duplicate_rejections) | 'AllRejections' >> beam.Flatten()
  read = records | 'CountRead' >> beam.combiners.Count.Globally()
  return {'kept': kept, 'rejected': rejected, 'read': read,
          'corrupt_files': read_files[CORRUPT_FILES]}


def _read_file(file: Tuple[str, str], settings: IngestionSettings):
  """The file's RawRecords, or, for a corrupt file, one CORRUPT_FILES output and no records."""
  path, split = file
  # Checked whole first: what is wrong may be at the end, after rows that would already be used.
  detail = readers.find_corruption(path)
  if detail:
    logging.warning('Corrupt input file %s: %s', path, detail)
    yield beam.pvalue.TaggedOutput(CORRUPT_FILES, {'source': path, 'split': split,
                                                   'detail': detail})
    return
  records = readers.read_records(path, split, settings.input_format, settings.text_columns,
                                 settings.label_column, settings.column_names)
  yield from logging_progress(records, path)


def logging_progress(records, path: str, every_seconds: float = READ_PROGRESS_SECONDS):
  """Yields `records`, logging every `every_seconds` how many of the file's rows were read (and,
  fused with the read, cleaned)."""
  next_report = time.monotonic() + every_seconds
  for count, record in enumerate(records, start=1):
    yield record
    if time.monotonic() >= next_report:
      _read_progress.info('read %d rows of %s so far', count, path)
      next_report = time.monotonic() + every_seconds


@beam.ptransform_fn
def WriteIngestionOutputs(cleaned, examples_dir: str,  # pylint: disable=invalid-name
                          report_path: str, rejected_path: str, input_splits: Sequence[str],
                          reject_corrupt_files: bool = False,
                          output_splits: Sequence[str] = SPLITS, spans: Optional[dict] = None):
  """Writes examples per split, the rejected rows and the report (checking the invariant).
  input_splits, output_splits, spans: as for `build_report`; a span run's examples carry the
  drift profile (`to_example`)."""
  kept, rejected = cleaned['kept'], cleaned['rejected']
  for split in output_splits:
    _ = (kept
         | f'Select{split}' >> beam.Filter(lambda c, s=split: c.split == s)
         | f'Serialize{split}' >> beam.Map(to_example, with_profile=spans is not None)
         | f'Shuffle{split}' >> beam.Reshuffle()
         | f'Write{split}' >> beam.io.WriteToTFRecord(
             os.path.join(examples_dir, f'Split-{split}', 'data_tfrecord'),
             file_name_suffix='.gz'))

  _ = (rejected
       | 'RejectedToJson' >> beam.Map(lambda r: json.dumps(r.to_json_dict(), ensure_ascii=False))
       | 'WriteRejected' >> beam.io.WriteToText(rejected_path, shard_name_template=''))

  kept_per_split = _count_per_key(kept | 'SplitOf' >> beam.Map(lambda c: c.split), 'Kept')
  rejected_per_reason = _count_per_key(rejected | 'ReasonOf' >> beam.Map(lambda r: r.reason),
                                       'Rejected')
  modified_per_step = _count_per_key(kept | 'StepsOf' >> beam.FlatMap(lambda c: c.modified),
                                     'Modified')
  rejected_per_input_split = _count_per_key(
      rejected | 'InputSplitAndReasonOf' >> beam.Map(lambda r: (r.split, r.reason)),
      'RejectedPerInputSplit')
  examples_per_reason = (
      rejected
      | 'KeyByReason' >> beam.Map(lambda r: (r.reason, r))
      | 'FirstPerReason' >> beam.combiners.Top.PerKey(
          REPORT_EXAMPLES_PER_REASON, key=lambda r: (r.source, r.record_number), reverse=True)
      | 'ExamplesToJson' >> beam.MapTuple(
          lambda reason, rows: (reason, [r.to_json_dict(REPORT_EXAMPLE_MAX_CHARS) for r in rows])))
  _ = (
      cleaned['read']
      | 'BuildReport' >> beam.Map(
          build_report,
          kept=beam.pvalue.AsDict(kept_per_split),
          rejected=beam.pvalue.AsDict(rejected_per_reason),
          modified=beam.pvalue.AsDict(modified_per_step),
          examples=beam.pvalue.AsDict(examples_per_reason),
          corrupt_files=beam.pvalue.AsList(cleaned['corrupt_files']),
          reject_corrupt_files=reject_corrupt_files,
          input_splits=input_splits,
          rejected_per_input_split=beam.pvalue.AsDict(rejected_per_input_split),
          output_splits=output_splits, spans=spans)
      | 'ReportToJson' >> beam.Map(lambda report: json.dumps(report, indent=2, ensure_ascii=False))
      | 'WriteReport' >> beam.io.WriteToText(report_path, shard_name_template=''))


def run(pipeline, input_files: Dict[str, List[str]], settings: IngestionSettings,
        examples_dir: str, report_path: str, rejected_path: str,
        output_splits: Sequence[str] = SPLITS, spans: Optional[dict] = None) -> None:
  """Adds the whole ingestion to `pipeline` (the caller runs it, then reads the report and calls
  check_usable). A span run names its splits (`output_splits`) and its spans."""
  _ = (pipeline
       | 'CleanAndSplit' >> CleanAndSplit(input_files, settings)  # pylint: disable=no-value-for-parameter
       | 'WriteOutputs' >> WriteIngestionOutputs(  # pylint: disable=no-value-for-parameter
           examples_dir, report_path, rejected_path, list(input_files),
           settings.reject_corrupt_files, output_splits, spans))


def read_report(report_path: str) -> dict:
  with tf.io.gfile.GFile(report_path) as f:
    return json.load(f)
