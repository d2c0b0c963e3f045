"""The ingestion and cleaning on hostile input, through the real Beam pipeline (the preview
command runs the same transforms as the TFX component). Every case has a precise outcome, and
every run accounts for every row: read == kept + rejected."""

import bz2
import glob
import gzip
import hashlib
import json
import lzma
import os
import re

import apache_beam as beam
import pytest
import tensorflow as tf
from tfx import v1 as tfx

from components.cleaning import __main__ as cleaning_cli
from components.cleaning.component import TextCleaningExampleGen, keep_evidence
from components.cleaning import readers, rules, transforms
from models.settings import IngestionSettings

LONG_TEXT = 'x' * 1_000_000

# (raw CSV bytes of one record, expected outcome): ('kept', cleaned text, modified steps) or
# ('rejected', reason). Lines are numbered from 2 (line 1 is the header).
HOSTILE_CSV_ROWS = [
    (b'plain text,1\r\n', ('kept', 'plain text', set())),  # CRLF line ending
    (b'nul\x00 and esc\x1b chars,0\r\n', ('kept', 'nul and esc chars',
                                          {rules.STRIPPED_CONTROL_CHARS})),
    ('emoji \U0001F600 fun,1\n'.encode(), ('kept', 'emoji \U0001F600 fun', set())),
    ('\u0641\u064a\u0644\u0645 \u0631\u0627\u0626\u0639,1\n'.encode(),
     ('kept', '\u0641\u064a\u0644\u0645 \u0631\u0627\u0626\u0639', set())),  # right-to-left
    (b'"<p>good<br />fun &amp; games</p>",1\n', ('kept', 'good fun & games',
                                                  {rules.STRIPPED_HTML,
                                                   rules.COLLAPSED_WHITESPACE})),
    (b'"first line\nsecond, line",0\n', ('kept', 'first line second, line',
                                        {rules.COLLAPSED_WHITESPACE})),  # multi-line quoted
    ('\ufb01ne -lrb- really -rrb-,1\n'.encode(), ('kept', 'fine ( really )',
                                                  {rules.NORMALIZED_UNICODE,
                                                   rules.REPLACED_TOKENS})),
    (b'"broken "quoting" here",1\n', ('rejected', rules.MALFORMED)),
    (b'too,many,fields\n', ('rejected', rules.MALFORMED)),
    (b',1\n', ('rejected', rules.EMPTY_TEXT)),
    (b'"   ",0\n', ('rejected', rules.EMPTY_TEXT)),
    (b'<br/>,0\n', ('rejected', rules.EMPTY_TEXT)),
    (b'no label here,\n', ('rejected', rules.MISSING_LABEL)),
    (b'odd label,7\n', ('rejected', rules.UNKNOWN_LABEL)),
    (b'bad \xff\xfe bytes,1\n', ('rejected', rules.UNDECODABLE)),
    (b'Nice  film,1\n', ('kept', 'Nice film', {rules.COLLAPSED_WHITESPACE})),
    (b'Nice film,1\n', ('rejected', rules.DUPLICATE)),
    (b'so so,1\n', ('rejected', rules.CONFLICTING_LABELS)),
    (b'so so,0\n', ('rejected', rules.CONFLICTING_LABELS)),
    (LONG_TEXT.encode() + b',0\n', ('kept', 'x' * IngestionSettings().max_text_chars,
                                    {rules.TRUNCATED})),  # a 1 MB line
]
EVAL_CSV = b'text,label\neval only,1\nplain text,1\n'


def record_numbers():
  """The line number each hostile record starts on."""
  line, numbers = 2, []
  for raw, _ in HOSTILE_CSV_ROWS:
    numbers.append(line)
    line += raw.count(b'\n')
  return numbers


def run_cli(tmp_path, *args):
  output = str(tmp_path / 'out')
  code = cleaning_cli.main([*args, '--output', output])
  report_path = os.path.join(output, transforms.REPORT_FILE)
  report = transforms.read_report(report_path) if os.path.exists(report_path) else None
  return code, output, report


def run_ingestion(tmp_path, input_files, settings):
  """The report of the ingestion as the component's executor runs it: the header check, then
  transforms.run in a Beam pipeline."""
  for paths in input_files.values():
    readers.check_headers(paths, settings)
  output = tmp_path / 'out'
  report_path = str(output / transforms.REPORT_FILE)
  with beam.Pipeline() as pipeline:
    transforms.run(pipeline, input_files, settings, str(output / 'examples'), report_path,
                   str(output / transforms.REJECTED_FILE))
  return transforms.read_report(report_path)


def read_examples(output, split):
  texts = {}
  for path in glob.glob(os.path.join(output, 'examples', f'Split-{split}', '*.gz')):
    for record in tf.data.TFRecordDataset(path, compression_type='GZIP'):
      example = tf.train.Example.FromString(record.numpy())
      feature = example.features.feature
      texts[feature['text'].bytes_list.value[0].decode()] = (
          feature['label'].bytes_list.value[0].decode())
  return texts


def read_rejected(output):
  with open(os.path.join(output, transforms.REJECTED_FILE), encoding='utf-8') as f:
    return [json.loads(line) for line in f]


def assert_accounted(report):
  assert report['read'] == report['kept_total'] + sum(report['rejected'].values())


@pytest.fixture(scope='module')
def hostile_run(tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp('hostile')
  train = tmp_path / 'hostile.csv'
  # A UTF-8 byte-order mark before the header.
  train.write_bytes(b'\xef\xbb\xbftext,label\r\n' + b''.join(raw for raw, _ in HOSTILE_CSV_ROWS))
  (tmp_path / 'empty.csv').write_bytes(b'')
  (tmp_path / 'header_only.csv').write_bytes(b'text,label\n')
  (tmp_path / 'eval.csv').write_bytes(EVAL_CSV)
  code, output, report = run_cli(
      tmp_path, '--input', str(train), '--input', str(tmp_path / 'empty.csv'),
      '--input', str(tmp_path / 'header_only.csv'), '--eval-input', str(tmp_path / 'eval.csv'),
      '--text-column', 'text', '--label-column', 'label', '--labels', '0', '1')
  return code, output, report, str(train)


def test_hostile_file_is_fully_accounted_for(hostile_run):
  code, _, report, _ = hostile_run
  assert code == 0
  assert report['read'] == len(HOSTILE_CSV_ROWS) + 2  # + the eval file; empty files add none
  assert_accounted(report)
  expected_rejections = {}
  for _, outcome in HOSTILE_CSV_ROWS:
    if outcome[0] == 'rejected':
      expected_rejections[outcome[1]] = expected_rejections.get(outcome[1], 0) + 1
  # 'plain text' is in both files: the eval copy is kept, the train copy is a duplicate.
  expected_rejections[rules.DUPLICATE] += 1
  assert report['rejected'] == expected_rejections
  assert report['kept'] == {'train': sum(o[0] == 'kept' for _, o in HOSTILE_CSV_ROWS) - 1,
                            'eval': 2}


def test_each_kept_row_is_cleaned_as_expected(hostile_run):
  _, output, _, _ = hostile_run
  train = read_examples(output, 'train')
  for raw, outcome in HOSTILE_CSV_ROWS:
    if outcome[0] == 'kept' and outcome[1] != 'plain text':
      assert outcome[1] in train, raw[:60]
  assert read_examples(output, 'eval') == {'eval only': '1', 'plain text': '1'}


def test_each_rejected_row_has_its_reason_source_and_line(hostile_run):
  _, output, _, train_path = hostile_run
  rejected = {(r['source'], r['record_number']): r for r in read_rejected(output)}
  for (raw, outcome), line in zip(HOSTILE_CSV_ROWS, record_numbers(), strict=True):
    if outcome[0] == 'rejected':
      row = rejected[(train_path, line)]
      assert row['reason'] == outcome[1], raw
      assert row['raw'] == raw.decode('utf-8', 'backslashreplace')
  assert rejected[(train_path, 2)]['reason'] == rules.DUPLICATE  # 'plain text', kept in eval


def test_report_counts_modifications_and_quotes_examples(hostile_run):
  _, _, report, _ = hostile_run
  modified = report['modified']
  assert modified[rules.TRUNCATED] == 1
  assert modified[rules.STRIPPED_HTML] == 1
  assert modified[rules.STRIPPED_CONTROL_CHARS] == 1
  assert modified[rules.REPLACED_TOKENS] == 1
  assert modified[rules.NORMALIZED_UNICODE] == 1
  for reason, count in report['rejected'].items():
    assert 1 <= len(report['rejected_examples'][reason]) <= min(count, 3)


def test_multi_processing_runner_gives_the_same_report(hostile_run, tmp_path):
  _, _, in_memory_report, train_path = hostile_run
  eval_path = os.path.join(os.path.dirname(train_path), 'eval.csv')
  code, _, report = run_cli(
      tmp_path, '--input', train_path, '--eval-input', eval_path, '--text-column', 'text',
      '--labels', '0', '1', '--beam-arg=--direct_running_mode=multi_processing',
      '--beam-arg=--direct_num_workers=2')
  assert code == 0
  assert report == in_memory_report


def test_jsonl_gzip_with_bad_lines(tmp_path):
  lines = [b'{"review": "loved it", "stars": 1}', b'{"review": "hated it", "stars": 0}',
           b'{"review": "no stars"}', b'not json', b'["a", "list"]', b'',
           b'{"review": "meh", "stars": 1}']
  path = tmp_path / 'reviews.jsonl.gz'
  with gzip.open(path, 'wb') as f:
    f.write(b'\n'.join(lines) + b'\n')
  _, output, report = run_cli(tmp_path, '--input', str(path), '--text-column', 'review',
                              '--label-column', 'stars', '--eval-percent', '50')
  assert report['read'] == 6  # the blank line is not a record
  assert report['rejected'] == {rules.MALFORMED: 2, rules.MISSING_LABEL: 1}
  assert report['kept_total'] == 3
  assert_accounted(report)
  kept = {**read_examples(output, 'train'), **read_examples(output, 'eval')}
  assert kept == {'loved it': '1', 'hated it': '0', 'meh': '1'}


def test_tsv_keeps_quotes_and_joins_text_columns(tmp_path):
  train, dev = tmp_path / 'titled.tsv', tmp_path / 'dev.tsv'
  train.write_text('title\tbody\tlabel\nA "quoted" title\tand its body\t1\n'
                   'second\tbody two\t0\n', encoding='utf-8')
  dev.write_text('title\tbody\tlabel\nthird\t\t1\n', encoding='utf-8')
  code, output, report = run_cli(tmp_path, '--input', str(train), '--eval-input', str(dev),
                                 '--text-column', 'title', '--text-column', 'body')
  assert code == 0
  assert read_examples(output, 'train') == {'A "quoted" title and its body': '1',
                                            'second body two': '0'}
  assert read_examples(output, 'eval') == {'third': '1'}
  assert report['rejected'] == {}
  assert_accounted(report)


@pytest.mark.parametrize('content, message', [
    (b'', 'no records'),
    (b'text,label\n', 'no records'),
])
def test_empty_inputs_exit_with_a_message(tmp_path, capsys, content, message):
  path = tmp_path / 'input.csv'
  path.write_bytes(content)
  code, _, report = run_cli(tmp_path, '--input', str(path), '--text-column', 'text')
  assert code == 1
  assert message in capsys.readouterr().err
  assert report['read'] == 0 and report['kept_total'] == 0


def test_missing_column_and_missing_file_exit_with_a_message(tmp_path, capsys):
  path = tmp_path / 'input.csv'
  path.write_bytes(b'review,label\nfine,1\n')
  code, _, report = run_cli(tmp_path, '--input', str(path), '--text-column', 'text')
  assert code == 1 and report is None
  assert "no column ['text']" in capsys.readouterr().err
  code, _, _ = run_cli(tmp_path, '--input', str(tmp_path / 'nope.csv'))
  assert code == 1
  assert 'No input file matches' in capsys.readouterr().err


def test_repair_and_reject_policies():
  record = rules.RawRecord('f.csv', 2, 'train', 'raw',
                           {'text': 'caf\udce9 ' + 'y' * 20, 'label': '1'})
  repaired = rules.to_candidate(record, IngestionSettings(
      text_columns=('text',), repair_undecodable=True, max_text_chars=10,
      truncate_long_text=False))
  assert repaired.reason == rules.TOO_LONG
  repaired = rules.to_candidate(record, IngestionSettings(text_columns=('text',),
                                                          repair_undecodable=True))
  assert repaired.text.startswith('caf\ufffd')
  assert rules.REPAIRED_ENCODING in repaired.modified


def test_hash_split_is_deterministic_and_near_the_ratio():
  texts = [f'text number {i}' for i in range(5000)]
  splits = [transforms.hash_split(t, 10) for t in texts]
  assert splits == [transforms.hash_split(t, 10) for t in texts]
  assert 0.08 < splits.count('eval') / len(splits) < 0.12


def test_broken_invariant_fails_loudly():
  with pytest.raises(transforms.IngestionError, match='unaccounted'):
    transforms.build_report(10, {'train': 5}, {rules.DUPLICATE: 4}, {}, {})


# Corrupt compressed inputs: never read in part.


def csv_rows(start, count):
  """Distinct texts that compress poorly, so that half a gzip still holds complete rows."""
  return ''.join(f'review {i} {hashlib.sha256(str(i).encode()).hexdigest()},{i % 2}\n'
                 for i in range(start, start + count)).encode()


CSV_ROWS = 2000
PLAIN_CSV = b'text,label\n' + csv_rows(0, CSV_ROWS)
GZIP_CSV = gzip.compress(PLAIN_CSV, mtime=0)


def flip_byte(data, index):
  flipped = bytearray(data)
  flipped[index] ^= 0xff
  return bytes(flipped)


# (file name, bytes, what find_corruption says). GZIP_CSV is 82 KB; its first ~1,000 rows are
# whole in its first half, which Beam's reader took for the whole file.
CORRUPT_FILES = [
    pytest.param('cut.csv.gz', GZIP_CSV[:len(GZIP_CSV) // 2], 'ends early', id='cut'),
    pytest.param('crc.csv.gz', flip_byte(GZIP_CSV, -8), 'CRC check failed', id='crc'),
    pytest.param('length.csv.gz', flip_byte(GZIP_CSV, -1), 'Incorrect length', id='length'),
    pytest.param('deflate.csv.gz', flip_byte(GZIP_CSV, 10), 'Error -3 while decompressing',
                 id='bad-deflate-data'),
    pytest.param('garbage.csv.gz', GZIP_CSV + b'garbage', 'Not a gzipped file',
                 id='trailing-garbage'),
    pytest.param('plain.csv.gz', PLAIN_CSV, 'Not a gzipped file', id='not-gzip'),
    pytest.param('cut.csv.bz2', bz2.compress(PLAIN_CSV)[:20_000], 'ends early', id='cut-bz2'),
    pytest.param('cut.csv.xz', lzma.compress(PLAIN_CSV)[:20_000], 'ends early', id='cut-xz'),
]


@pytest.mark.parametrize('name, content, detail', CORRUPT_FILES)
def test_corrupt_compressed_file_is_never_read_in_part(tmp_path, name, content, detail):
  path = str(tmp_path / name)
  with open(path, 'wb') as f:
    f.write(content)
  assert re.search(detail, readers.find_corruption(path))
  # Read without the check, it raises, naming the file, rather than yield fewer rows.
  with pytest.raises(readers.CorruptFileError, match=re.escape(path)):
    list(readers.read_records(path, 'train', 'csv', ('text',), 'label'))
  # Left to the pipeline, which lists every corrupt file.
  readers.check_headers([path], IngestionSettings(text_columns=('text',), input_format='csv'))


def test_zero_byte_gzip_is_a_cut_one(tmp_path):
  # Python reads it as empty; gzip(1) as cut: even empty data compresses to 20 bytes.
  path = tmp_path / 'empty.csv.gz'
  path.write_bytes(b'')
  assert 'ends early' in readers.find_corruption(str(path))


@pytest.mark.parametrize('content', [
    pytest.param(GZIP_CSV + gzip.compress(csv_rows(CSV_ROWS, 10)), id='two-members'),
    pytest.param(GZIP_CSV + bytes(100), id='trailing-zero-padding'),
    pytest.param(gzip.compress(b'text,label\n'), id='header-only'),
])
def test_whole_gzip_variants_are_read_whole(tmp_path, content):
  path = str(tmp_path / 'input.csv.gz')
  with open(path, 'wb') as f:
    f.write(content)
  assert readers.find_corruption(path) == ''
  records = list(readers.read_records(path, 'train', 'csv', ('text',), 'label'))
  assert len(records) == len(gzip.decompress(content).splitlines()) - 1
  assert all(record.fields for record in records)


def test_io_errors_are_not_taken_for_corrupt_files(tmp_path):
  path = tmp_path / 'a_directory.csv.gz'
  path.mkdir()
  with pytest.raises(IsADirectoryError):
    readers.find_corruption(str(path))


def test_cut_gzip_fails_the_component_run_naming_the_file(tmp_path):
  whole, cut = str(tmp_path / 'whole.csv.gz'), str(tmp_path / 'train.csv.gz')
  with open(whole, 'wb') as f:
    f.write(gzip.compress(b'text,label\n' + csv_rows(CSV_ROWS, 100)))
  with open(cut, 'wb') as f:
    f.write(GZIP_CSV[:len(GZIP_CSV) // 2])
  report = run_ingestion(tmp_path, {'': [whole, cut]}, IngestionSettings(text_columns=('text',)))
  assert report['read'] == 100  # none of the cut file's rows
  assert_accounted(report)
  with pytest.raises(transforms.IngestionError, match=re.escape(cut) + '.*ends early'):
    transforms.check_usable(report, max_eval_rejected_percent=5)
  assert [f['source'] for f in report['corrupt_files']] == [cut]


@pytest.mark.parametrize('content, detail, beam_args', [
    pytest.param(GZIP_CSV[:len(GZIP_CSV) // 2], 'ends early', [], id='cut'),
    # The corrupt file is reported as data, not raised in a worker: the same on every runner.
    pytest.param(GZIP_CSV[:len(GZIP_CSV) // 2], 'ends early',
                 ['--beam-arg=--direct_running_mode=multi_processing',
                  '--beam-arg=--direct_num_workers=2'], id='cut-multi-processing'),
    pytest.param(flip_byte(GZIP_CSV, -8), 'CRC check failed', [], id='crc'),
    pytest.param(PLAIN_CSV, 'Not a gzipped file', [], id='not-gzip'),
])
def test_corrupt_gzip_fails_the_preview_naming_the_file(tmp_path, capsys, content, detail,
                                                        beam_args):
  path = tmp_path / 'train.csv.gz'
  path.write_bytes(content)
  code, _, report = run_cli(tmp_path, '--input', str(path), '--text-column', 'text', *beam_args)
  assert code == 1
  error = capsys.readouterr().err
  assert re.search(re.escape(str(path)) + '.*' + detail, error), error
  assert report['read'] == 0


def test_opt_in_rejects_corrupt_files_whole_and_lists_them(tmp_path):
  contents = {'whole.csv.gz': gzip.compress(b'text,label\n' + csv_rows(CSV_ROWS, 100)),
              'cut.csv.gz': GZIP_CSV[:len(GZIP_CSV) // 2],
              'crc.csv.gz': flip_byte(GZIP_CSV, -8)}
  paths = {name: str(tmp_path / name) for name in contents}
  for name, content in contents.items():
    with open(paths[name], 'wb') as f:
      f.write(content)
  report = run_ingestion(tmp_path, {'': sorted(paths.values())},
                         IngestionSettings(text_columns=('text',), reject_corrupt_files=True))

  assert report['read'] == 100 and report['kept_total'] == 100  # the whole file's rows only
  assert_accounted(report)
  assert report['corrupt_files'] == []
  rejected_files = report['rejected_files'][readers.CORRUPT_FILE]
  assert [(f['source'], f['split']) for f in rejected_files] == [
      (paths['crc.csv.gz'], ''), (paths['cut.csv.gz'], '')]
  assert 'CRC check failed' in rejected_files[0]['detail']
  assert 'ends early' in rejected_files[1]['detail']
  transforms.check_usable(report, max_eval_rejected_percent=5)  # the run goes on without them
  summary = transforms.format_report(report)
  assert f"rejected file (corrupt_file): {paths['cut.csv.gz']}" in summary
  assert read_rejected(tmp_path / 'out') == []  # files are not rows


def write_csv(path, rows) -> str:
  path.write_text('text,label\n' + ''.join(f'{text},{label}\n' for text, label in rows))
  return str(path)


@pytest.mark.parametrize('unknown_eval_labels, fails', [(0, False), (1, False), (4, True)])
def test_eval_rows_lost_to_rejection_warn_and_above_the_limit_fail(tmp_path, unknown_eval_labels,
                                                                   fails):
  train = write_csv(tmp_path / 'train.csv', [(f'train text {i}', i % 2) for i in range(40)])
  eval_rows = [(f'eval text {i}', 'neutral' if i < unknown_eval_labels else i % 2)
               for i in range(20)]
  report = run_ingestion(tmp_path, {'train': [train],
                                    'eval': [write_csv(tmp_path / 'eval.csv', eval_rows)]},
                         IngestionSettings(text_columns=('text',)))
  assert_accounted(report)
  assert report['kept']['eval'] == 20 - unknown_eval_labels
  assert transforms.eval_file_rows(report) == (unknown_eval_labels, 20)
  warning = transforms.eval_shrinkage_warning(report)
  if not unknown_eval_labels:
    assert warning == ''
  else:
    assert f'lost {unknown_eval_labels} of the eval files\' 20 rows' in warning
    assert f'unknown_label {unknown_eval_labels}' in warning
    assert 'warning: the eval split lost' in transforms.format_report(report)
  if fails:  # 4 of 20 is 20%, above the 5% limit; 1 of 20 is at it
    with pytest.raises(transforms.IngestionError, match=r'max_eval_rejected_percent \(5%\)'):
      transforms.check_usable(report, max_eval_rejected_percent=5)
  else:
    transforms.check_usable(report, max_eval_rejected_percent=5)


def test_a_hash_split_has_no_eval_files_to_lose_rows_of(tmp_path):
  rows = [(f'text {i}', 'neutral' if i < 10 else i % 2) for i in range(100)]
  report = run_ingestion(tmp_path, {'': [write_csv(tmp_path / 'all.csv', rows)]},
                         IngestionSettings(text_columns=('text',)))
  assert report['rejected_per_input_split'] == {'': {rules.UNKNOWN_LABEL: 10}}
  assert transforms.eval_file_rows(report) is None
  assert transforms.eval_shrinkage_warning(report) == ''


def test_a_failed_ingestion_keeps_its_report_and_rejected_rows(tmp_path):
  """TFX deletes a failed component's outputs; the files the error points to must outlive it."""
  rows = [(f'text {i}', 'neutral') for i in range(30)]  # no row has a known label
  write_csv(tmp_path / 'train.csv', rows)
  write_csv(tmp_path / 'eval.csv', rows[:5])
  settings = IngestionSettings(data_root=str(tmp_path), train_pattern='train.csv',
                               eval_pattern='eval.csv', text_columns=('text',))
  pipeline = tfx.dsl.Pipeline(
      pipeline_name='ingestion_only', pipeline_root=str(tmp_path / 'root'),
      components=[TextCleaningExampleGen(settings)],
      metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
          str(tmp_path / 'metadata.sqlite')))
  with pytest.raises(transforms.IngestionError) as failure:
    tfx.orchestration.LocalDagRunner().run(pipeline)

  message = str(failure.value)
  assert 'No rows kept' in message and '35 rejected rows, each with its reason' in message
  kept_report, kept_rejected = re.search(r'report is kept at (\S+); the rejected rows at (\S+) ',
                                         message).groups()
  assert transforms.read_report(kept_report)['rejected'] == {rules.UNKNOWN_LABEL: 35}
  assert len(read_rejected(os.path.dirname(kept_rejected))) == 35
  # The component's own output folders are gone: the kept copies are the only evidence.
  report_outputs = glob.glob(str(tmp_path / 'root' / 'TextCleaningExampleGen' /
                                 'cleaning_report' / '*' / transforms.REPORT_FILE))
  assert report_outputs == []


def test_an_empty_rejected_file_is_said_to_be_empty(tmp_path):
  (tmp_path / 'report.json').write_text('{}')
  (tmp_path / 'rejected.jsonl').write_text('')
  message = keep_evidence(str(tmp_path / 'report.json'), str(tmp_path / 'rejected.jsonl'),
                          str(tmp_path / 'kept'))
  assert message.endswith('(empty: no row was rejected).')
  assert sorted(os.listdir(tmp_path / 'kept')) == ['rejected.jsonl', 'report.json']


@pytest.mark.parametrize('raw, cleaned', [
    ('&lt;b&gt;Bold&lt;/b&gt; news', 'Bold news'),  # markup that arrived escaped
    ('&amp;lt;A HREF="x"&amp;gt;link&amp;lt;/A&amp;gt; here', 'link here'),  # escaped twice
    ('&lt;FONT face=verdana&gt;Fed #39;s quot;hike quot;', 'Fed \'s "hike "'),  # '&' lost
    ('<p>good<br />fun &amp; games</p>', 'good fun & games'),
    ('a < b and 3 > 2', 'a < b and 3 > 2'),  # not tags: left alone, and not counted
    ('&lt;3 you', '<3 you'),
    ('AT&T;s profit', 'AT&T;s profit'),  # no entity there
])
def test_html_is_unescaped_before_tags_are_stripped(raw, cleaned):
  text, steps = rules.clean_text(raw, IngestionSettings())
  assert text == cleaned
  assert (rules.STRIPPED_HTML in steps) == (raw != cleaned)
