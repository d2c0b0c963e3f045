"""Spans: data that arrives over time. Which spans a run reads, each way a span layout can be
wrong, drift between spans judged before training, and scheduled runs over new spans on a real
LocalDagRunner with ml-metadata."""

import dataclasses
import json
import os
import re
import time

import pytest
from ml_metadata.proto import metadata_store_pb2

from components import drift_gate
from components.cleaning import __main__ as preview, spans
from components.cleaning.component import input_config_for
from components.cleaning.readers import InputError
from models import dataset_file
from models.settings import DriftSettings, IngestionSettings, with_overrides
from models.features import ACCURACY_METRIC
from pipeline import history, local_runner, report, run_record, run_summary
from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline
from serving import model_config, push_record, versions
from tests.helpers import SST2_DIR, latest_executions, open_in_chromium, small_config

HEADER = 'sentence\tlabel'


def write_span(root, span: int, rows, eval_rows=(), folder='span-{}'):
  """A span folder with train.tsv (and eval.tsv when eval_rows are given) of (text, label)."""
  directory = os.path.join(str(root), folder.format(span))
  os.makedirs(directory, exist_ok=True)
  for name, content in (('train.tsv', rows), ('eval.tsv', eval_rows)):
    if content:
      with open(os.path.join(directory, name), 'w', encoding='utf-8') as f:
        f.write('\n'.join([HEADER] + [f'{text}\t{label}' for text, label in content]) + '\n')


def settings(root, **overrides) -> IngestionSettings:
  return dataclasses.replace(IngestionSettings(), **{
      'data_root': str(root), 'train_pattern': 'span-{SPAN}/train.tsv',
      'eval_pattern': 'span-{SPAN}/eval.tsv', **overrides})


ROWS = [('a fine film', '1'), ('a dull film', '0')]


# --- which spans a run reads ----------------------------------------------------------------


def test_the_newest_span_and_a_window_of_the_newest_spans(tmp_path):
  for span in (1, 2, 3, 4):
    write_span(tmp_path, span, ROWS, ROWS)
  assert spans.plan(settings(tmp_path), 4) == spans.SpanPlan(newest=4, window=(4,), baseline=3)
  assert spans.plan(settings(tmp_path, window=3), 4).window == (2, 3, 4)
  # At the start of the data the window is what exists.
  assert spans.plan(settings(tmp_path, window=3), 1) == spans.SpanPlan(1, (1,), None)
  window = settings(tmp_path, window=3)
  files = spans.input_files(window, spans.plan(window, 4))
  relative = {split: [os.path.relpath(f, tmp_path) for f in files[split]] for split in files}
  assert relative == {'train': ['span-4/train.tsv'], 'eval': ['span-4/eval.tsv'],
                      'train_minus_1': ['span-3/train.tsv'], 'train_minus_2': ['span-2/train.tsv']}
  assert spans.training_splits(3) == ['train', 'train_minus_1', 'train_minus_2']
  # One span: the previous span is still read, for drift only.
  assert spans.older_span_splits(1) == ['train_minus_1'] and spans.training_splits(1) == ['train']


def test_a_fixed_eval_file_or_an_eval_split_carved_from_the_newest_span(tmp_path):
  for span in (1, 2):
    write_span(tmp_path, span, ROWS)
  (tmp_path / 'golden.tsv').write_text(f'{HEADER}\na fine film\t1\n')
  fixed = settings(tmp_path, eval_pattern='golden.tsv')
  files = spans.input_files(fixed, spans.plan(fixed, 2))
  assert [os.path.basename(f) for f in files['eval']] == ['golden.tsv']
  golden = settings(tmp_path, eval_pattern='', golden_pattern='golden.tsv')
  files = spans.input_files(golden, spans.plan(golden, 2))
  assert sorted(files) == ['', 'golden', 'train_minus_1']
  assert [os.path.basename(f) for f in files['golden']] == ['golden.tsv']
  carved = settings(tmp_path, eval_pattern='')
  files = spans.input_files(carved, spans.plan(carved, 2))
  assert sorted(files) == ['', 'train_minus_1']  # '' : the newest span, split by a hash


def test_a_golden_file_is_a_split_of_its_own_with_or_without_spans():
  splits = input_config_for(IngestionSettings(golden_pattern='golden.tsv')).splits
  assert [(split.name, split.pattern) for split in splits] == [
      ('train', 'train.tsv'), ('eval', 'validation.tsv'), ('golden', 'golden.tsv')]
  # With spans TFX wants {SPAN} in every split it resolves: the golden file is read beside them.
  spanned = IngestionSettings(train_pattern='s-{SPAN}/*.tsv', golden_pattern='golden.tsv')
  assert [split.name for split in input_config_for(spanned).splits] == ['train']


def test_the_preview_reads_a_span_datasets_newest_span(tmp_path, capsys):
  for span, rows in ((1, ROWS), (2, ROWS + [('a new film', '1')])):
    write_span(tmp_path / 'data', span, rows, ROWS)
  dataset = tmp_path / 'reviews.yaml'
  dataset.write_text("name: reviews\ndata_root: data\ntrain: 'span-{SPAN}/train.tsv'\n"
                     "eval: 'span-{SPAN}/eval.tsv'\ntext_columns: [sentence]\nlabels: ['0', '1']\n")
  assert preview.main(['--dataset', str(dataset), '--output', str(tmp_path / 'out')]) == 0
  report = json.loads((tmp_path / 'out' / 'cleaning_report.json').read_text())
  # Span 2's three training rows and its eval file's two (the same texts: one copy kept each).
  assert report['read'] == 5 and report['kept'] == {'train': 1, 'eval': 2}


def test_zero_padded_spans():
  assert spans.pattern_for_span('day-{SPAN:3}/*.tsv', 7) == 'day-007/*.tsv'
  assert spans.pattern_for_span('day-{SPAN}/*.tsv', 7) == 'day-7/*.tsv'


# --- one clear line for each wrong layout ---------------------------------------------------


def test_a_pattern_that_matches_no_span(tmp_path):
  write_span(tmp_path, 1, ROWS, folder='batch-{}')
  with pytest.raises(InputError, match=r"^No span matches '.*span-\{SPAN\}/train.tsv'\.$"):
    spans.spans_on_disk(str(tmp_path), 'span-{SPAN}/train.tsv')


def test_a_span_folder_with_no_files(tmp_path):
  write_span(tmp_path, 1, ROWS)
  os.makedirs(tmp_path / 'span-2')
  with pytest.raises(InputError, match=r"^Span 2 has no file matching 'train.tsv' in its folder "
                                       r".*span-2\.$"):
    spans.spans_on_disk(str(tmp_path), 'span-{SPAN}/train.tsv')


def test_a_span_that_is_not_a_number(tmp_path):
  write_span(tmp_path, 1, ROWS)
  write_span(tmp_path, 'two', ROWS)
  with pytest.raises(InputError, match=r"matches 'two' in .*span-two/train.tsv, which is not a "
                                       r'span number\.$'):
    spans.spans_on_disk(str(tmp_path), 'span-{SPAN}/train.tsv')


def test_a_gap_in_the_window_names_the_missing_spans(tmp_path):
  for span in (1, 2, 5):
    write_span(tmp_path, span, ROWS, ROWS)
  with pytest.raises(InputError, match=r'^The window of 3 spans ending at span 5 has a gap: '
                                       r'span\(s\) 3, 4 have no file matching .* \(spans on disk: '
                                       r'1, 2, 5\)\.$'):
    spans.plan(settings(tmp_path, window=3), 5)


def test_span_settings_are_checked_when_the_configuration_is_built(tmp_path):
  with pytest.raises(ValueError, match='window 2 needs spans'):
    IngestionSettings(window=2)
  with pytest.raises(ValueError, match="golden_pattern 'g-{SPAN}.tsv' names a fixed file"):
    settings(tmp_path, golden_pattern='g-{SPAN}.tsv')


def test_a_dataset_file_names_spans_a_window_and_drift_thresholds(tmp_path):
  path = tmp_path / 'reviews.yaml'
  path.write_text("name: reviews\ndata_root: data\ntrain: 'span-{SPAN}/train-*.tsv'\n"
                  "eval: golden.tsv\nwindow: 3\ndrift: {label_linf: 0.2, on_drift: warn}\n"
                  "golden: holdout.tsv\n")
  overrides = dataset_file.load(str(path))
  assert overrides['ingestion']['window'] == 3
  assert overrides['ingestion']['golden_pattern'] == 'holdout.tsv'
  assert overrides['drift'] == {'label_linf': 0.2, 'on_drift': 'warn'}
  path.write_text("name: reviews\ntrain: 'span-{SPAN}/train.tsv'\nwindow: '3'\n")
  with pytest.raises(dataset_file.DatasetFileError, match='window must be a whole number'):
    dataset_file.load(str(path))


def test_span_datasets_with_a_pretrained_backbone_warm_start_by_default(tmp_path):
  spans_dataset = {'ingestion': {'data_root': str(tmp_path), 'train_pattern': 's-{SPAN}/*.tsv'}}
  pretrained = with_overrides(PipelineConfig(), spans_dataset)
  assert pretrained.warm_start and not PipelineConfig().warm_start  # no spans: off
  assert not with_overrides(pretrained, {'model': {'architecture': 'transformer'}}).warm_start
  assert not with_overrides(pretrained, {'training': {'warm_start': False}}).warm_start
  # The Trainer gets the last blessed model, and the resolved setting.
  [trainer] = [node for node in create_pipeline(pretrained).components if node.id == 'Trainer']
  assert 'base_model' in trainer.inputs
  assert json.loads(trainer.exec_properties['custom_config'])['training']['warm_start'] is True


def test_the_drift_check_compares_labels_lengths_and_words_with_the_thresholds():
  config = drift_gate.distribution_validator_config(
      DriftSettings(label_linf=0.2, length_jsd=0.3, vocabulary_linf=0.4))
  compared = {tuple(f.path.step): f.distribution_comparator
              for f in config.default_slice_config.feature}
  assert compared[('label',)].infinity_norm.threshold == pytest.approx(0.2)
  assert compared[('word_count',)].jensen_shannon_divergence.threshold == pytest.approx(0.3)
  assert compared[('words',)].infinity_norm.threshold == pytest.approx(0.4)


# --- scheduled runs over arriving spans -----------------------------------------------------


def sst2_rows(count: int, offset: int, positive_share=None):
  """`count` (text, label) rows of SST-2's training file from `offset`; with positive_share, that
  share of them positive (a planted label shift)."""
  with open(os.path.join(SST2_DIR, 'train.tsv'), encoding='utf-8') as f:
    rows = [tuple(line.rstrip('\n').split('\t')) for line in list(f)[1:]]
  rows = [(text.strip(), label) for text, label in rows[offset:offset + 6 * count]]
  if positive_share is None:
    return rows[:count]
  positives = [r for r in rows if r[1] == '1'][:round(count * positive_share)]
  return positives + [r for r in rows if r[1] == '0'][:count - len(positives)]


def run(config):
  run_id = f'span-test-{time.time()}'
  local_runner.runner(run_id).run(local_runner.build(config))
  return run_record.read_run(config, run_id)


@pytest.mark.slow
def test_scheduled_runs_learn_from_new_spans_and_stop_on_drift(tmp_path):
  data = tmp_path / 'data'
  eval_rows = sst2_rows(150, 60000)
  write_span(data, 1, sst2_rows(1200, 0), eval_rows)
  config = small_config(str(data), str(tmp_path))
  with open(os.path.join(SST2_DIR, 'validation.tsv'), encoding='utf-8') as f:
    (data / 'golden.tsv').write_text(''.join(list(f)[:101]))  # the header and 100 rows
  config = dataclasses.replace(config, ingestion=dataclasses.replace(
      config.ingestion, train_pattern='span-{SPAN}/train.tsv',
      eval_pattern='span-{SPAN}/eval.tsv', golden_pattern='golden.tsv', window=2))

  first = run(config)
  assert first.spans == {'newest': 1, 'window': [1], 'baseline': None}
  assert first.drift['verdict'] == 'span 1 is the first span: nothing to compare it with'
  text = run_summary.format_summary(first, 60)
  assert 'Spans: newest 1, trained on 1.' in text
  assert first.model.pushed_to
  assert first.model.golden_metrics['overall']['example_count'] == 100
  assert 'Golden file: accuracy ' in text

  # The same newest span again: nothing new to learn, served from cache.
  run(config)
  executions = latest_executions(config)
  for node_id in ('TextCleaningExampleGen', 'DistributionValidator', 'Transform', 'Trainer'):
    assert executions[node_id].last_known_state == metadata_store_pb2.Execution.CACHED, node_id

  # A new span (more of the same data): read, compared with span 1, trained on both.
  write_span(data, 2, sst2_rows(1200, 8000), eval_rows)
  second = run(config)
  assert second.spans == {'newest': 2, 'window': [1, 2], 'baseline': 1}
  assert not second.drift['drifted']
  assert {m['feature'] for m in second.drift['measurements']} == {'label', 'word_count', 'words'}
  assert all(m['value'] < m['threshold'] for m in second.drift['measurements'])
  assert second.cleaning['kept']['train_minus_1'] == 1200
  text = run_summary.format_summary(second, 60)
  assert 'Spans: newest 2, trained on 1-2.' in text
  assert 'Drift: span 2 against span 1: no drift.' in text
  assert 'the last blessed model' in text  # both models on span 2's eval split
  assert re.search(r'Golden file: accuracy \d\.\d{4} on 100 examples; the last blessed model '
                   r'\d\.\d{4} on the same examples', text)
  # The pushed version says what it was trained on and how it scored.
  base_directory = os.path.join(config.serving_model_dir, config.model_name)
  push = push_record.read_pushes(base_directory)[max(model_config.versions(base_directory))]
  assert push.spans == [1, 2]
  assert push.accuracy == pytest.approx(second.model.metrics['overall'][ACCURACY_METRIC])
  assert ' 1-2 ' in versions.listing(config.serving_model_dir)

  # A span whose labels shifted: stopped before training, in one line, nothing pushed.
  write_span(data, 3, sst2_rows(1200, 16000, positive_share=0.9), eval_rows)
  pushed = sorted(os.listdir(os.path.join(config.serving_model_dir, config.model_name)))
  with pytest.raises(RuntimeError, match=r'^Drift, span 3 against span 2: label: L-infinity '
                                         r'distance of class shares 0\.\d{4} > threshold '
                                         r'0\.1000\. Stopping before training'):
    run(config)
  assert sorted(os.listdir(os.path.join(config.serving_model_dir, config.model_name))) == pushed

  # With on_drift: warn the same span trains, and the summary marks it.
  warned = run(dataclasses.replace(config, drift=DriftSettings(on_drift='warn')))
  assert warned.drift['drifted'] and warned.spans['window'] == [2, 3]
  assert '(on_drift: warn, trained anyway)' in run_summary.format_summary(warned, 60)
  label = next(m for m in warned.drift['measurements'] if m['feature'] == 'label')
  assert label['flagged'] and label['value'] > 0.3  # 90% positive against about 56%

  # The history, from ml-metadata: every run, what it read, measured, scored and pushed.
  past = history.read_history(config)
  assert [past_run.outcome for past_run in past] == [
      'trained', 'served from cache', 'trained', 'stopped at DriftGate', 'trained']
  assert [past_run.spans['newest'] for past_run in past] == [1, 1, 2, 3, 3]
  assert [past_run.read for past_run in past] == [1450, 1450, 2650, 2650, 2650]
  assert all(past_run.kept + past_run.rejected == past_run.read for past_run in past)
  assert past[0].drift == [] and not any(m['flagged'] for m in past[2].drift)
  assert [m['feature'] for m in past[3].drift if m['flagged']] == ['label']  # stopped: still there
  assert past[3].drift == warned.drift['measurements']
  for past_run, summary in ((past[2], second), (past[4], warned)):
    overall = summary.model.metrics['overall']
    assert past_run.accuracy == pytest.approx(overall[ACCURACY_METRIC])
    assert past_run.live_accuracy == pytest.approx(
        overall[ACCURACY_METRIC] - overall[f'{ACCURACY_METRIC}_diff'])
    assert past_run.pushed_version == os.path.basename(summary.model.pushed_to)
  assert past[1].pushed_version is None and past[3].accuracy is None

  # The report, opened in a browser: the spans, their drift and the history, every chart drawn
  # and described.
  page = open_in_chromium(report.write_report(warned, config.pipeline_name, config.pipeline_root,
                                              past))
  assert page['console_errors'] == []
  assert page['image_widths'] and all(page['image_widths']), page['image_widths']
  assert all(alt.strip() for alt in page['image_alts']), page['image_alts']
  for text in ('Spans and drift', 'L-infinity distance of class shares', 'History of this pipeline',
               'stopped at DriftGate', 'served from cache', '(flagged)', '3; 2-3'):
    assert text in page['text'], text
