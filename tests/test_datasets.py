"""Bringing one's own data: dataset files, outputs named after the dataset, headerless CSV, the
preview on a dataset file, class names in the summary, and a baseline for other classes refused.

The slow test is issue #14's acceptance run: a 6-class TSV dataset and a 2-class headerless
quoted CSV dataset, one after the other with the same (default) output settings, from their
dataset files alone."""

import csv
import dataclasses
import json
import math
import os
import random
import re
import subprocess
import sys

import pytest
import tensorflow as tf
from google.protobuf import text_format

from components import class_checked_evaluator
from components.cleaning import __main__ as cleaning_cli, readers, transforms
from components.described_schema import described_schema
from models import dataset_file
from models.settings import REPO_ROOT, IngestionSettings
from pipeline import pipeline as pipeline_lib, run_record, run_summary
from pipeline.config import PipelineConfig
from serving import model_config
from tests.helpers import open_in_chromium

QUESTION_CLASSES = {'ABBR': 'abbreviation', 'DESC': 'description', 'ENTY': 'entity',
                    'HUM': 'person', 'LOC': 'location', 'NUM': 'number'}
NEWS_CLASSES = ['World', 'Sports', 'Business', 'Sci/Tech']
# Settings that make a whole pipeline run take about a minute (a dataset file's `settings`).
TINY_RUN_SETTINGS = {
    'preprocessing': {'vocab_size': 500, 'max_seq_length': 24},
    'model': {'architecture': 'transformer', 'embedding_dim': 16, 'num_layers': 1,
              'num_heads': 2, 'intermediate_dim': 32},
    'training': {'epochs': 2, 'batch_size': 16},
    'evaluation': {'accuracy_lower_bound': 0.0},
}


def write_yaml(path, description: dict) -> str:
  path.write_text(json.dumps(description, indent=2))  # JSON is YAML: both forms are read
  return str(path)


def synthetic_texts(rng: random.Random, keyword: str, count: int):
  filler = ['the', 'a', 'of', 'report', 'today', 'new', 'about', 'what', 'is', 'on']
  return [' '.join(rng.sample(filler, 4) + [keyword] + rng.sample(filler, 3))
          for _ in range(count)]


def mislabelled_questions():
  """(label, text, the class its keyword names): an eval row per class whose text carries the
  next class's keyword, which a model that learned the keywords gets wrong, surely."""
  labels = list(QUESTION_CLASSES)
  return [(label, f'what is the {QUESTION_CLASSES[other]} in this question ?',
           QUESTION_CLASSES[other])
          for label, other in zip(labels, labels[1:] + labels[:1], strict=True)]


def write_question_dataset(folder, rng, rows_per_class=40) -> str:
  """`label text` lines converted to TSV with a header: 6 classes, each with its keyword, and
  the mislabelled_questions in the eval file. Enough training for the keywords to be learned."""
  os.makedirs(folder, exist_ok=True)
  for name, count in (('train.tsv', rows_per_class), ('dev.tsv', rows_per_class // 4)):
    with open(os.path.join(folder, name), 'w', encoding='utf-8') as f:
      f.write('label\ttext\n')
      for label, keyword in QUESTION_CLASSES.items():
        for text in synthetic_texts(rng, keyword, count):
          f.write(f'{label}\t{text} ?\n')
      if name == 'train.tsv':  # two rows to reject, with their reasons
        f.write('QUANT\thow many questions have no class ?\nNUM\t \n')
      else:
        f.write(''.join(f'{label}\t{text}\n' for label, text, _ in mislabelled_questions()))
  return write_yaml(folder / 'questions.yaml', {
      'name': 'questions', 'data_root': '.', 'train': 'train.tsv', 'eval': 'dev.tsv',
      'text_columns': ['text'], 'label_column': 'label', 'labels': QUESTION_CLASSES,
      'settings': {**TINY_RUN_SETTINGS,
                   'training': {'epochs': 6, 'batch_size': 16, 'learning_rate': 5e-3}}})


def write_news_dataset(folder, rng, rows_per_class=50, classes=4, mislabelled=0) -> str:
  """A headerless, fully quoted CSV of "class index","title","description" rows, with commas
  and quotes inside fields and escaped HTML, as news corpora come: the first `classes` of
  NEWS_CLASSES. `mislabelled`: that many rows per class carry another class's keyword, chosen
  among those the eval split takes (by their cleaned text, plain words here)."""
  os.makedirs(folder, exist_ok=True)
  keywords, eval_percent = ('war', 'match', 'stocks', 'chip')[:classes], 20
  with open(os.path.join(folder, 'news.csv'), 'w', encoding='utf-8', newline='') as f:
    writer = csv.writer(f, quoting=csv.QUOTE_ALL)
    for index, keyword in enumerate(keywords, start=1):
      for text in synthetic_texts(rng, keyword, rows_per_class):
        writer.writerow([str(index), f'{keyword.title()}, "{text[:12]}"',
                         f'&lt;b&gt;{text}&lt;/b&gt; (AP)'])
      planted = 0
      while planted < mislabelled:
        [text] = synthetic_texts(rng, keywords[index % classes], 1)
        if transforms.hash_split(f'Update {text}', eval_percent) == 'eval':
          writer.writerow([str(index), 'Update', text])
          planted += 1
  labels = [str(index) for index in range(1, classes + 1)]
  return write_yaml(folder / 'news.yaml', {
      'name': 'news', 'data_root': '.', 'train': 'news.csv', 'eval_percent': eval_percent,
      'columns': ['class', 'title', 'description'], 'text_columns': ['title', 'description'],
      'label_column': 'class', 'labels': dict(zip(labels, NEWS_CLASSES, strict=False)),
      'settings': TINY_RUN_SETTINGS})


# --- dataset files -------------------------------------------------------------------------


def test_the_bundled_sst2_file_describes_the_default_configuration(monkeypatch):
  for name in ('DATASET', 'OVERRIDES', 'DATA_ROOT'):
    monkeypatch.delenv(f'TEXT_CLASSIFIER_{name}', raising=False)
  config = PipelineConfig.from_env()  # no dataset named: SST-2's file
  default = PipelineConfig()
  assert config.pipeline_name == config.model_name == 'sst2'
  assert dataclasses.replace(config.ingestion, label_display_names=()) == default.ingestion
  assert config.ingestion.display_names == ('negative', 'positive')
  assert config.schema_file == ''  # generated from the description


def test_a_dataset_file_names_the_outputs_and_sets_its_settings(tmp_path, monkeypatch):
  monkeypatch.delenv('TEXT_CLASSIFIER_OVERRIDES', raising=False)
  path = write_news_dataset(tmp_path / 'news', random.Random(0))
  news = PipelineConfig.from_env(path)
  sst2 = PipelineConfig.from_env()
  assert news.pipeline_name == news.model_name == 'news'
  assert news.ingestion.data_root == str(tmp_path / 'news')  # relative to the file
  assert news.ingestion.eval_pattern == '' and news.ingestion.eval_percent == 20
  assert news.ingestion.column_names == ('class', 'title', 'description')
  assert news.ingestion.label_names == ('1', '2', '3', '4')
  assert news.ingestion.display_names == tuple(NEWS_CLASSES)
  assert news.model.architecture == 'transformer' and news.training.epochs == 2
  # Two tasks with the same output settings share nothing a run writes or reads.
  for name in ('pipeline_root', 'metadata_path', 'push_destination'):
    assert getattr(news, name) != getattr(sst2, name), name
  # The environment still has the last word.
  monkeypatch.setenv('TEXT_CLASSIFIER_OVERRIDES', '{"training": {"epochs": 5}}')
  assert PipelineConfig.from_env(path).training.epochs == 5


@pytest.mark.parametrize('content, message', [
    ('name: Reviews!\ntrain: a.csv\n', "name 'Reviews!' must be"),
    ('name: reviews\ntrian: a.csv\n', r"unknown key\(s\) \['trian'\]"),
    ('name: reviews\nlabels: negative\n', 'labels must map class names'),
    ('name: reviews\nsettings: [1]\n', 'settings must be a mapping'),
    ('name: [unclosed\n', 'is not valid YAML or JSON'),
    ('- name\n', 'must hold a mapping'),
    ('name: reviews\ncolumns: [label, body]\ntext_columns: [title]\n', 'lacks .*title'),
    ('name: reviews\nlabels: [a, b]\nsettings: {ingestion: {label_display_names: [x]}}\n',
     'must name each of label_names'),
    ('name: reviews\nlabels: [no, yes]\n', "labels has False; write names as strings"),
    ('name: reviews\nlabels: [1.0, 2.0]\n', 'labels has 1.0'),
    ("name: reviews\nlabels: {'0': negative, '1': }\n", 'has None'),
    ('name: reviews\nlabels: [a, a]\n', 'names something twice'),
    ('name: reviews\neval:\n', 'eval must be a string'),
])
def test_a_bad_dataset_file_is_a_clear_error_naming_it(tmp_path, content, message):
  path = tmp_path / 'reviews.yaml'
  path.write_text(content)
  with pytest.raises(ValueError, match=message) as error:
    PipelineConfig.from_env(str(path))
  if isinstance(error.value, dataset_file.DatasetFileError):
    assert str(path) in str(error.value)


def test_the_runner_refuses_a_missing_dataset_file_in_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'pipeline.local_runner', '--dataset', str(tmp_path / 'nope.yaml')],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TEXT_CLASSIFIER_OUTPUT_DIR=str(tmp_path / 'out')))
  assert result.returncode == 2
  assert result.stderr.strip() == (f'error: Cannot read the dataset file {tmp_path}/nope.yaml: '
                                   'No such file or directory.')
  assert not (tmp_path / 'out').exists()


def test_the_generated_schema_lists_the_labels_or_accepts_any():
  schema = described_schema(['1', '2', '3'])
  assert [f.name for f in schema.feature] == ['text', 'label']
  assert list(schema.string_domain[0].value) == ['1', '2', '3']
  assert not described_schema([]).string_domain
  assert text_format.Parse(text_format.MessageToString(schema), type(schema)()) == schema


# --- the preview on a dataset file ---------------------------------------------------------


def test_the_preview_reads_a_headerless_quoted_csv_from_its_dataset_file(tmp_path):
  path = write_news_dataset(tmp_path / 'news', random.Random(0), rows_per_class=10)
  code = cleaning_cli.main(['--dataset', path, '--output', str(tmp_path / 'out'), '--strict'])
  assert code == 0
  report = transforms.read_report(str(tmp_path / 'out' / transforms.REPORT_FILE))
  assert report['read'] == 40 and report['kept_total'] == 40  # no header row lost or misread
  assert set(report['kept']) == {'train', 'eval'}  # carved out by eval_percent
  texts = []
  for split in ('train', 'eval'):
    folder = tmp_path / 'out' / 'examples' / f'Split-{split}'
    for file in folder.iterdir():
      for record in tf.data.TFRecordDataset(str(file), compression_type='GZIP'):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        texts.append((feature['text'].bytes_list.value[0].decode(),
                      feature['label'].bytes_list.value[0].decode()))
  assert {label for _, label in texts} == {'1', '2', '3', '4'}
  # Title and description joined; quotes and commas kept; escaped tags removed.
  assert all(text.startswith(('War, "', 'Match, "', 'Stocks, "', 'Chip, "')) and '<' not in text
             and text.endswith('(AP)') for text, _ in texts)


def test_the_preview_warns_when_most_rows_are_rejected_and_fails_with_strict(tmp_path, capsys):
  write_question_dataset(tmp_path, random.Random(0))
  # Two of the six classes named: two thirds of the rows have an unknown label.
  args = ['--input', str(tmp_path / 'train.tsv'), '--text-column', 'text', '--labels', 'ABBR',
          'DESC']
  assert cleaning_cli.main(args + ['--output', str(tmp_path / 'out')]) == 0
  warning = 'WARNING: most rows were rejected: 162 of 242 (67%; '
  assert warning in capsys.readouterr().err
  assert cleaning_cli.main(args + ['--output', str(tmp_path / 'strict'), '--strict']) == 1
  assert warning in capsys.readouterr().err


def test_the_preview_label_flags_override_the_dataset_file(tmp_path):
  news = write_news_dataset(tmp_path / 'news', random.Random(0), rows_per_class=5)
  args = ['--dataset', news, '--output']
  settings, _ = cleaning_cli.settings_and_files(cleaning_cli.parse_args(args + ['a', '--labels']))
  assert settings.label_names == () and settings.label_display_names == ()  # any label
  settings, _ = cleaning_cli.settings_and_files(
      cleaning_cli.parse_args(args + ['b', '--labels', '1', '2', '3']))
  assert settings.display_names == ('1', '2', '3')  # the file's 4 display names dropped
  assert settings.column_names == ('class', 'title', 'description')  # the rest stays


def test_a_headerless_file_that_has_its_header_row_anyway_loses_no_row(tmp_path):
  path = tmp_path / 'news.csv'
  path.write_text('class,title,description\n1,a title,a text\n2,another,more text\n')
  records = list(readers.read_records(str(path), 'train', 'csv', ('title', 'description'),
                                      'class', ('class', 'title', 'description')))
  assert [record.fields['class'] for record in records] == ['1', '2']


def test_the_preview_without_a_dataset_accepts_any_label_and_counts_them(tmp_path):
  (tmp_path / 'data.csv').write_text('text,label\nfine,joy\nbad,anger\nok,surprise\n')
  (tmp_path / 'dev.csv').write_text('text,label\ngreat,joy\n')
  code = cleaning_cli.main(['--input', str(tmp_path / 'data.csv'), '--eval-input',
                            str(tmp_path / 'dev.csv'), '--text-column', 'text',
                            '--output', str(tmp_path / 'out')])
  assert code == 0
  report = transforms.read_report(str(tmp_path / 'out' / transforms.REPORT_FILE))
  assert report['kept_total'] == 4  # not SST-2's labels: nothing rejected as unknown


# --- class names, and a baseline for other classes -----------------------------------------


def test_the_summary_names_classes_and_the_weakest_slice():
  metrics = {
      'overall': {'sparse_categorical_accuracy': 0.81, 'example_count': 300.0,
                  'sparse_categorical_accuracy_diff': 0.02,
                  **{f'{name}[classId:{i}]': 0.5 + i / 10 for i in range(3)
                     for name in ('precision', 'recall', 'auc')},
                  **{f'auc_diff[classId:{i}]': 0.01 for i in range(3)}},
      'length_bucket:short': {'sparse_categorical_accuracy': 0.9, 'example_count': 200.0},
      'length_bucket:long': {'sparse_categorical_accuracy': 0.62, 'example_count': 100.0},
  }
  text = '\n'.join(run_summary.format_metrics_table(metrics, ['World', 'Sports', 'Sci/Tech']))
  assert ('accuracy 0.8100 on 300 examples; the last blessed model 0.7900 on the same examples '
          '(+0.0200)') in text
  assert 'classId' not in text and '_diff' not in text
  for name in ('World', 'Sports', 'Sci/Tech'):
    assert name in text
  assert 'Weakest slice: length_bucket:long, accuracy 0.6200 (n=100)' in text


def test_per_class_precision_and_recall_come_from_the_confusion_matrix():
  # actual 0: 3 right, 1 taken for class 2; actual 1: 2 taken for class 0; class 2 never present.
  plot = {'matrices': [{'entries': [
      {'numWeightedExamples': 3.0}, {'predictedClassId': 2, 'numWeightedExamples': 1.0},
      {'actualClassId': 1, 'numWeightedExamples': 2.0}]}]}
  values = run_record.per_class_precision_recall(plot)
  assert values['precision[classId:0]'] == pytest.approx(3 / 5)
  assert values['recall[classId:0]'] == pytest.approx(3 / 4)
  assert math.isnan(values['precision[classId:1]']) and values['recall[classId:1]'] == 0.0
  assert values['precision[classId:2]'] == 0.0 and math.isnan(values['recall[classId:2]'])


def write_model_classes(folder, classes):
  assets = folder / 'Format-Serving' / 'assets'
  assets.mkdir(parents=True)
  (assets / 'labels').write_text(''.join(f'{name}\n' for name in classes))
  return str(folder)


def test_a_baseline_for_other_classes_is_refused_in_one_line(tmp_path):
  sst2 = write_model_classes(tmp_path / 'sst2', ['0', '1'])
  same = write_model_classes(tmp_path / 'same', ['0', '1'])
  reordered = write_model_classes(tmp_path / 'reordered', ['1', '0'])
  six = write_model_classes(tmp_path / 'six', list(QUESTION_CLASSES))
  class_checked_evaluator.check_same_classes(same, sst2)
  for candidate in (reordered, six):
    with pytest.raises(class_checked_evaluator.ClassMismatchError,
                       match=r"^The last blessed model classifies \['0', '1'\], this one") as error:
      class_checked_evaluator.check_same_classes(candidate, sst2)
    assert '\n' not in str(error.value) and 'another name' in str(error.value)


def test_both_evaluators_check_the_baseline_classes():
  config = PipelineConfig(distillation=dataclasses.replace(
      PipelineConfig().distillation, enabled=True))
  evaluators = [node for node in pipeline_lib.create_pipeline(config).components
                if node.id in (pipeline_lib.EVALUATOR_ID, pipeline_lib.STUDENT_EVALUATOR_ID)]
  assert len(evaluators) == 2
  for node in evaluators:
    assert node.executor_spec.executor_class is class_checked_evaluator.Executor


# --- issue #14's acceptance run ------------------------------------------------------------


def run_pipeline(dataset: str, environment: dict) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-m', 'pipeline.local_runner', '--dataset', dataset],
                        cwd=REPO_ROOT, env=environment, capture_output=True, text=True,
                        timeout=1200)


def assert_mistakes_shown(page: dict, class_names) -> None:
  """The report's most confident mistakes: text, actual class, another predicted, probability."""
  assert 'The most confident mistakes (eval split)' in page['text']
  names = '|'.join(map(re.escape, class_names))
  rows = re.findall(rf'(?m)^(.+?)\s+({names})\s+({names})\s+([01]\.\d{{4}})$', page['text'])
  assert rows and all(actual != predicted for _, actual, predicted, _ in rows), page['text']


@pytest.mark.slow
def test_two_datasets_one_after_the_other_get_separate_served_models(tmp_path):
  rng = random.Random(0)
  questions = write_question_dataset(tmp_path / 'questions', rng)
  news_classes = NEWS_CLASSES[:2]  # and the 2-class report
  news = write_news_dataset(tmp_path / 'news', rng, classes=len(news_classes), mislabelled=2)
  # The same output settings for both, as a user who sets nothing would have.
  environment = dict(os.environ, TEXT_CLASSIFIER_OUTPUT_DIR=str(tmp_path / 'tfx_output'),
                     TEXT_CLASSIFIER_SERVING_DIR=str(tmp_path / 'serving_model'))
  environment.pop('TEXT_CLASSIFIER_OVERRIDES', None)
  reports = {}
  for dataset, name, classes in ((questions, 'questions', QUESTION_CLASSES.values()),
                                 (news, 'news', news_classes)):
    result = run_pipeline(dataset, environment)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f'Pushed to: {tmp_path}/serving_model/{name}/' in result.stdout
    for class_name in classes:  # the summary's per-class table
      assert class_name in result.stdout
    assert 'classId' not in result.stdout
    assert f'cleaning report {tmp_path}/tfx_output/pipeline_root/{name}/' in result.stdout
    last_line = result.stdout.strip().splitlines()[-1]
    assert last_line.startswith(f'Report: file://{tmp_path}/tfx_output/pipeline_root/{name}/')
    reports[name] = last_line[len('Report: file://'):]
  assert model_config.model_names(str(tmp_path / 'serving_model')) == ['news', 'questions']
  # TF Serving's config for what was pushed: both models.
  assert [entry.name for entry in model_config.read_config(
      str(tmp_path / 'serving_model')).model_config_list.config] == ['news', 'questions']
  page = open_in_chromium(reports['questions'])
  assert page['console_errors'] == []
  # Label and length distributions, confusion matrix, reliability, slices, training curves; the
  # history of one run is a sentence.
  assert len(page['image_widths']) == 5 and all(page['image_widths']), page['image_widths']
  for text in ('rejected: unknown_label 1', 'rejected: empty_text 1', 'TFDV anomalies',
               *QUESTION_CLASSES.values(), 'No blessed model to compare with yet',
               f"train.tsv:{6 * 40 + 2}",  # the rejected row's record, after the header
               'One run so far: accuracy', 'Classes most often confused (eval split)'):
    assert text in page['text'], text
  assert_mistakes_shown(page, QUESTION_CLASSES.values())
  # The mislabelled rows, taken for the class their keyword names, each among its class's
  # surest mistakes; and their pairs of classes among those most often confused.
  for label, text, keyword_class in mislabelled_questions():
    assert re.search(rf'(?m)^{re.escape(text)}\s+{QUESTION_CLASSES[label]}\s+{keyword_class}'
                     r'\s+[01]\.\d{4}$', page['text']), text
  assert any(re.search(rf'{QUESTION_CLASSES[label]}\s+{keyword_class}\s+\d+\s+\d+\.\d%',
                       page['text']) for label, _, keyword_class in mislabelled_questions())
  page = open_in_chromium(reports['news'])
  assert page['console_errors'] == []
  assert len(page['image_widths']) == 5 and all(page['image_widths']), page['image_widths']
  assert_mistakes_shown(page, news_classes)
  assert sorted(os.listdir(tmp_path / 'tfx_output' / 'pipeline_root')) == ['news', 'questions']
  assert sorted(os.listdir(tmp_path / 'tfx_output' / 'metadata')) == ['news', 'questions']

  # The served label is the class's display name, in a fresh process.
  [version] = model_config.versions(str(tmp_path / 'serving_model' / 'news'))
  served = subprocess.run(
      [sys.executable, '-c', 'import sys, tensorflow_text, tensorflow as tf; '
       'm = tf.saved_model.load(sys.argv[1]); '
       'print(m.signatures["serving_default"](text=tf.constant(["stocks fall"]))["label"]'
       '.numpy()[0].decode())', str(tmp_path / 'serving_model' / 'news' / str(version))],
      capture_output=True, text=True, check=True)
  assert served.stdout.strip().splitlines()[-1] in NEWS_CLASSES

  # The same name with its classes in another order is another task: refused before TFMA runs.
  with open(news, encoding='utf-8') as f:
    description = json.load(f)
  description['labels'] = dict(reversed(list(description['labels'].items())))
  reordered = write_yaml(tmp_path / 'news' / 'news_reordered.yaml', description)
  result = run_pipeline(reordered, environment)
  assert result.returncode == 1
  last_line = result.stderr.strip().splitlines()[-2]  # then the hint about --verbose
  assert last_line.startswith("error: ClassMismatchError: The last blessed model classifies "
                              "['1', '2'], this one ['2', '1']"), result.stderr
  assert model_config.versions(str(tmp_path / 'serving_model' / 'news')) == [version]  # none new


def test_ingestion_settings_refuse_display_names_that_do_not_match():
  with pytest.raises(ValueError, match='must name each of label_names'):
    IngestionSettings(label_names=('a', 'b', 'c'), label_display_names=('x', 'y'))
