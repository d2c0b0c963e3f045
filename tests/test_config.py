"""Configuration: overrides from the environment, and every setting checked when the
configuration is built, before any component runs, with one line naming what is wrong."""

import os
import subprocess
import sys

import pytest

from models.settings import REPO_ROOT, DriftSettings, IngestionSettings, SettingsError
from pipeline.config import PipelineConfig, check_local_files


def test_overrides_set_nested_fields(monkeypatch):
  monkeypatch.setenv('TEXT_CLASSIFIER_OVERRIDES',
                     '{"model": {"architecture": "transformer"}, "training": {"max_steps": 7}}')
  config = PipelineConfig.from_env()
  assert config.model.architecture == 'transformer' and config.training.max_steps == 7


def test_json_lists_become_the_settings_tuples(monkeypatch):
  monkeypatch.setenv('TEXT_CLASSIFIER_OVERRIDES', '{"training": {"length_buckets": [4, 12]}}')
  assert PipelineConfig.from_env().training.length_buckets == (4, 12)


# One per kind of mistake: the message names the setting, the value and what is allowed.
BAD_SETTINGS = [
    ('{"training": {"epochs": 2}', 'TEXT_CLASSIFIER_OVERRIDES is not valid JSON'),
    ('[1, 2]', 'TEXT_CLASSIFIER_OVERRIDES must be a JSON object'),
    ('{"trainng": {}}', 'trainng is not a setting; PipelineConfig has pipeline_name, '),
    ('{"training": {"epoch": 2}}', 'training.epoch is not a setting; TrainingSettings has '
                                   'batch_size, epochs, '),
    ('{"training": {"distribution_strategy": "mirorred"}}',
     "training.distribution_strategy = 'mirorred': input should be 'auto', 'default', "
     "'mirrored', 'multi_worker' or 'tpu'."),
    ('{"training": {"mixed_precision": "fp16"}}', "training.mixed_precision = 'fp16': input "
                                                   "should be '', 'mixed_float16' or "
                                                   "'mixed_bfloat16'."),
    ('{"model": {"architecture": "cnn"}}', "model.architecture = 'cnn': input should be "
                                           "'pretrained' or 'transformer'."),
    ('{"model": {"pooling": "sum"}}', "model.pooling = 'sum': input should be 'mean', 'max', "
                                      "'mean_max' or 'cls'."),
    ('{"distillation": {"push": "all"}}', "distillation.push = 'all': input should be "),
    ('{"distillation": {"student": {"num_layers": 0}}}',
     'distillation.student.num_layers = 0: input should be greater than 0.'),
    ('{"training": {"batch_size": "many"}}', "training.batch_size = 'many': input should be a "
                                             "valid integer"),
    ('{"training": {"learning_rate": -0.001}}', 'training.learning_rate = -0.001: input should '
                                                'be greater than 0.'),
    ('{"training": {"warmup_fraction": 1.5}}', 'training.warmup_fraction = 1.5: input should be '
                                               'less than 1.'),
    ('{"ingestion": {"eval_percent": 100}}', 'ingestion.eval_percent = 100: input should be '
                                             'less than or equal to 99.'),
    ('{"ingestion": {"input_format": "xlsx"}}', "ingestion.input_format = 'xlsx': input should "
                                                "be '', 'csv', 'tsv' or 'jsonl'."),
    ('{"evaluation": {"accuracy_lower_bound": 75}}',
     'evaluation.accuracy_lower_bound = 75: input should be less than or equal to 1.'),
    ('{"training": 3}', 'training = 3: input should be a dictionary or an instance of '
                        'TrainingSettings.'),
    ('{"model": {"architecture": "transformer", "pooling": "cls"}}',
     "model: pooling 'cls' needs a pretrained backbone"),
    ('{"distillation": {"student": {"architecture": "transformer", "pooling": "cls"}}}',
     "distillation.student: pooling 'cls' needs a pretrained backbone"),
    ('{"model": {"architecture": "transformer", "embedding_dim": 100, "num_heads": 3}}',
     'model: embedding_dim 100 must be a multiple of num_heads 3.'),
    ('{"training": {"length_buckets": [32, 8]}}', 'training: length_buckets [32, 8] must '
                                                  'increase.'),
    ('{"ingestion": {"window": 2}}', 'ingestion: window 2 needs spans'),
    # Strict numbers and switches: YAML's true is not 1, nor 1 true.
    ('{"training": {"learning_rate": true}}', 'training.learning_rate = True: input should be '
                                               'a valid number'),
    ('{"ingestion": {"strip_html": 1}}', 'ingestion.strip_html = 1: input should be a valid '
                                        'boolean'),
]


@pytest.mark.parametrize('value, message', BAD_SETTINGS)
def test_a_wrong_setting_is_one_line_naming_it(monkeypatch, value, message):
  monkeypatch.setenv('TEXT_CLASSIFIER_OVERRIDES', value)
  with pytest.raises(ValueError) as error:
    PipelineConfig.from_env()
  assert message in str(error.value) and '\n' not in str(error.value)


def test_every_mistake_is_named_at_once(monkeypatch):
  monkeypatch.setenv('TEXT_CLASSIFIER_OVERRIDES',
                     '{"training": {"epochs": 0, "seed": "x"}, "model": {"dropout": 2}}')
  with pytest.raises(SettingsError) as error:
    PipelineConfig.from_env()
  assert [problem.split(' = ')[0] for problem in str(error.value).split('; ')] == [
      'model.dropout', 'training.epochs', 'training.seed']


@pytest.mark.parametrize('override, message', [
    ({'model': {'backbone': '/no/such/checkpoint'}},
     "model.backbone = '/no/such/checkpoint': no such directory."),
    ({'model': {'backbone': 'package://no_such_package/model'}},
     "Backbone 'package://no_such_package/model': the Python package 'no_such_package' is not "
     'installed'),
    ({'schema_file': '/no/such/schema.pbtxt'}, "schema_file = '/no/such/schema.pbtxt': no such "
                                               'file'),
])
def test_files_a_setting_names_must_be_on_this_machine(monkeypatch, override, message):
  monkeypatch.setenv('TEXT_CLASSIFIER_OVERRIDES', str(override).replace("'", '"'))
  with pytest.raises(SettingsError, match=message):
    check_local_files(PipelineConfig.from_env())


def test_names_and_handles_of_downloaded_backbones_are_not_local_paths(monkeypatch):
  for backbone in ('bert_small_en_uncased', 'hf://sentence-transformers/all-MiniLM-L6-v2'):
    monkeypatch.setenv('TEXT_CLASSIFIER_OVERRIDES', f'{{"model": {{"backbone": "{backbone}"}}}}')
    check_local_files(PipelineConfig.from_env())


def test_settings_built_in_code_are_checked_too():
  with pytest.raises(ValueError, match='window 2 needs spans'):
    IngestionSettings(window=2)
  with pytest.raises(ValueError, match='should be greater than 0'):
    IngestionSettings(window=0)
  with pytest.raises(ValueError, match="should be 'stop' or 'warn'"):
    DriftSettings(on_drift='ignore')
  with pytest.raises(ValueError, match='should be greater than 0'):
    DriftSettings(label_linf=0.0)


@pytest.mark.parametrize('environment, message', [
    ({'TEXT_CLASSIFIER_OVERRIDES': '{"training": {"distribution_strategy": "mirorred"}}'},
     "error: training.distribution_strategy = 'mirorred': input should be 'auto', 'default', "
     "'mirrored', 'multi_worker' or 'tpu'."),
    ({'TEXT_CLASSIFIER_OVERRIDES': '{"model": {"backbone": "./my-checkpoint"}}'},
     "error: model.backbone = './my-checkpoint': no such directory."),
    ({'TEXT_CLASSIFIER_OVERRIDES': '{"ingestion": {"window": 3}}'},
     "error: ingestion: window 3 needs spans: a train pattern with {SPAN} (got 'train.tsv')."),
])
def test_the_runner_stops_on_a_wrong_setting_before_any_component(tmp_path, environment,
                                                                   message):
  result = subprocess.run(
      [sys.executable, '-m', 'pipeline.local_runner'], cwd=REPO_ROOT, capture_output=True,
      text=True, timeout=120,
      env=dict(os.environ, TEXT_CLASSIFIER_OUTPUT_DIR=str(tmp_path / 'out'), **environment))
  assert result.returncode == 2, result.stderr
  [line] = result.stderr.strip().splitlines()
  assert line.startswith(message), line
  assert result.stdout == '' and not (tmp_path / 'out').exists()
