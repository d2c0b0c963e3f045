"""The default data on any machine: GLUE's SST-2 fetched into the cache folder (from a local
archive of the same layout, by its file:// URL: no test reaches the internet), and the runner's
check of the input files before anything runs."""

import hashlib
import os
import socket
import zipfile

import pytest

from models.settings import IngestionSettings
from pipeline import config as config_lib
from pipeline import local_runner, sst2_data

TRAIN = ('sentence\tlabel\nhide new secretions from the parental units \t0\n'
         'goes to absurd lengths \t0\n')
DEV = "sentence\tlabel\nit 's a charming and often affecting journey . \t1\n"


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
  """An empty cache folder, and a download URL that leads nowhere unless a test names one."""
  for name in ('TEXT_CLASSIFIER_DATASET', 'TEXT_CLASSIFIER_DATA_ROOT', 'TEXT_CLASSIFIER_OVERRIDES'):
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setenv(sst2_data.CACHE_DIR_ENV, str(tmp_path / 'cache'))
  monkeypatch.setenv(sst2_data.URL_ENV, (tmp_path / 'nowhere' / 'SST-2.zip').as_uri())


@pytest.fixture
def archive(tmp_path):
  """(file:// URL, SHA-256) of a small zip laid out as GLUE's SST-2.zip."""
  path = tmp_path / 'SST-2.zip'
  with zipfile.ZipFile(path, 'w') as zipped:
    zipped.writestr('SST-2/train.tsv', TRAIN)
    zipped.writestr('SST-2/dev.tsv', DEV)
    zipped.writestr('SST-2/test.tsv', 'index\tsentence\n0\tunlabelled\n')
  return path.as_uri(), hashlib.sha256(path.read_bytes()).hexdigest()


def read(folder, name):
  with open(os.path.join(folder, name), encoding='utf-8') as f:
    return f.read()


def test_the_cache_folder_is_under_the_cache_dir(tmp_path, monkeypatch):
  assert sst2_data.cache_dir() == str(tmp_path / 'cache' / 'sst2')
  monkeypatch.delenv(sst2_data.CACHE_DIR_ENV)
  monkeypatch.setenv('HOME', str(tmp_path / 'home'))
  assert sst2_data.cache_dir() == str(tmp_path / 'home' / '.cache' / 'text-classifier' / 'sst2')


def test_a_fetch_unpacks_train_and_dev_as_the_dataset_file_names_them(tmp_path, archive):
  url, sha256 = archive
  folder = str(tmp_path / 'cache' / 'sst2')
  assert sst2_data.fetch(folder, url, sha256) == folder
  assert sorted(os.listdir(folder)) == ['train.tsv', 'validation.tsv']
  assert read(folder, 'train.tsv') == TRAIN and read(folder, 'validation.tsv') == DEV
  assert os.listdir(tmp_path / 'cache') == ['sst2']  # no archive or temporary folder left


def test_an_empty_cache_folder_is_filled(tmp_path, archive):
  folder = tmp_path / 'cache' / 'sst2'
  folder.mkdir(parents=True)
  sst2_data.fetch(str(folder), *archive)
  assert sst2_data.is_complete(str(folder))


def test_an_archive_with_another_checksum_is_refused_and_nothing_unpacked(tmp_path, archive):
  url, _ = archive
  with pytest.raises(sst2_data.FetchError) as error:
    sst2_data.fetch(str(tmp_path / 'cache' / 'sst2'), url, sst2_data.SHA256)
  assert str(error.value).startswith(f"{url} is not GLUE's SST-2 archive: its SHA-256 is ")
  assert sst2_data.SHA256 in str(error.value) and '\n' not in str(error.value)
  assert os.listdir(tmp_path / 'cache') == []


@pytest.mark.parametrize('url', ['file:///nonexistent/SST-2.zip', 'http://127.0.0.1:9/SST-2.zip'])
def test_an_unreachable_archive_says_how_to_provide_the_files(tmp_path, url):
  folder = str(tmp_path / 'cache' / 'sst2')
  with pytest.raises(sst2_data.FetchError) as error:
    sst2_data.fetch(folder, url, sst2_data.SHA256, timeout=5)
  message = str(error.value)
  assert message.startswith(f'Cannot download SST-2 from {url} (') and '\n' not in message
  assert 'python -m pipeline.sst2_data' in message and f'in {folder}' in message
  assert os.listdir(tmp_path / 'cache') == []


def test_a_server_that_never_answers_times_out(tmp_path):
  with socket.create_server(('127.0.0.1', 0)) as server:  # accepts, then says nothing
    url = f'http://127.0.0.1:{server.getsockname()[1]}/SST-2.zip'
    with pytest.raises(sst2_data.FetchError, match=r'^Cannot download SST-2 from .* \(timed out\)'):
      sst2_data.fetch(str(tmp_path / 'cache' / 'sst2'), url, sst2_data.SHA256, timeout=0.5)


def test_a_folder_holding_other_files_is_not_overwritten(tmp_path, archive):
  folder = tmp_path / 'cache' / 'sst2'
  folder.mkdir(parents=True)
  (folder / 'train.tsv').write_text('mine\n')
  with pytest.raises(sst2_data.FetchError, match=f'^Cannot put SST-2 in {folder}: '):
    sst2_data.fetch(str(folder), *archive)
  assert os.listdir(folder) == ['train.tsv'] and os.listdir(tmp_path / 'cache') == ['sst2']


def test_the_fetch_command_prints_the_folder(tmp_path, archive, monkeypatch, capsys):
  url, sha256 = archive
  monkeypatch.setenv(sst2_data.URL_ENV, url)
  monkeypatch.setattr(sst2_data, 'SHA256', sha256)  # the test archive's, not GLUE's
  sst2_data.main([])
  assert capsys.readouterr().out == f'{tmp_path / "cache" / "sst2"}\n'
  assert read(tmp_path / 'cache' / 'sst2', 'validation.tsv') == DEV


def test_the_fetch_command_offline_is_one_line_and_exit_code_1(capsys):
  with pytest.raises(SystemExit) as exit_:
    sst2_data.main([])
  assert exit_.value.code == 1
  [line] = capsys.readouterr().err.splitlines()
  assert line.startswith('error: Cannot download SST-2 from file://')


def test_the_default_dataset_falls_back_to_the_cache_then_to_a_fetch(tmp_path, archive,
                                                                       monkeypatch, capsys):
  empty = tmp_path / 'empty'
  empty.mkdir()
  monkeypatch.setenv('TEXT_CLASSIFIER_DATA_ROOT', str(empty))
  url, sha256 = archive
  monkeypatch.setenv(sst2_data.URL_ENV, url)
  monkeypatch.setattr(sst2_data, 'SHA256', sha256)
  cache = str(tmp_path / 'cache' / 'sst2')

  fetched = config_lib.with_local_data(config_lib.PipelineConfig.from_env())
  assert fetched.ingestion.data_root == cache and sst2_data.is_complete(cache)
  assert capsys.readouterr().out == f'SST-2 is not in {empty}: downloading it into {cache}.\n'

  os.remove(tmp_path / 'SST-2.zip')  # the cached copy is read without a download
  cached = config_lib.with_local_data(config_lib.PipelineConfig.from_env())
  assert cached.ingestion.data_root == cache
  assert capsys.readouterr().out == f'SST-2 is not in {empty}: reading the copy in {cache}.\n'


def test_present_data_is_left_as_it_is(tmp_path):
  (tmp_path / 'train.tsv').write_text(TRAIN)
  config = config_lib.PipelineConfig(ingestion=IngestionSettings(
      data_root=str(tmp_path), eval_pattern=''))
  assert config_lib.with_local_data(config) is config
  assert not os.path.exists(tmp_path / 'cache')


def test_another_dataset_missing_a_file_names_it_and_fetches_nothing(tmp_path):
  (tmp_path / 'data').mkdir()
  (tmp_path / 'data' / 'train.csv').write_text('text,label\ngood,1\n')
  dataset = tmp_path / 'reviews.yaml'
  dataset.write_text('name: reviews\ndata_root: data\ntrain: train.csv\neval: dev.csv\n')
  config = config_lib.PipelineConfig.from_env(str(dataset))
  with pytest.raises(config_lib.MissingDataError) as error:
    config_lib.with_local_data(config, str(dataset))
  assert str(error.value).startswith(f'No input files at {tmp_path}/data/dev.csv (dataset file '
                                     f'{dataset}). Put the files there, set TEXT_CLASSIFIER_')
  assert not os.path.exists(tmp_path / 'cache')


@pytest.mark.parametrize('data_root, train, golden, missing', [
    ('gs://bucket/raw', 'train.tsv', '', ''),  # remote: not checked from here
    ('TMP', 'span-{SPAN}/train.tsv', '', ''),  # spans: the folder is enough
    ('TMP/absent', 'span-{SPAN}/train.tsv', '', 'TMP/absent'),
    ('TMP', 'train-*.tsv', '', 'TMP/train-*.tsv'),
    ('TMP', 'train*.tsv', 'golden.tsv', 'TMP/golden.tsv'),
])
def test_each_pattern_must_match_a_file(tmp_path, data_root, train, golden, missing):
  (tmp_path / 'train.tsv').write_text(TRAIN)
  ingestion = IngestionSettings(data_root=data_root.replace('TMP', str(tmp_path)),
                                train_pattern=train, eval_pattern='', golden_pattern=golden)
  assert config_lib.missing_data(ingestion) == missing.replace('TMP', str(tmp_path))


def test_the_runner_stops_before_anything_runs_when_the_data_is_nowhere(tmp_path, monkeypatch,
                                                                      capsys):
  empty = tmp_path / 'empty'
  empty.mkdir()
  monkeypatch.setenv('TEXT_CLASSIFIER_DATA_ROOT', str(empty))
  monkeypatch.setenv('TEXT_CLASSIFIER_OUTPUT_DIR', str(tmp_path / 'out'))
  monkeypatch.setenv('TEXT_CLASSIFIER_SERVING_DIR', str(tmp_path / 'serving'))
  with pytest.raises(SystemExit) as exit_:
    local_runner.main([])
  assert exit_.value.code == 2
  [line] = capsys.readouterr().err.splitlines()
  cache = tmp_path / 'cache' / 'sst2'
  assert line.startswith(f"error: SST-2's files are not in {empty} nor in {cache}. Cannot "
                         'download SST-2 from file://')
  assert 'python -m pipeline.sst2_data' in line and '--dataset' in line
  assert not (tmp_path / 'out').exists() and not (tmp_path / 'serving').exists()
  assert os.listdir(tmp_path / 'cache') == []
