"""`python -m serving.versions`: list, pin and unpin on models the real Pusher pushed, with the
models.config it rewrites parsed by TF Serving's protos."""

import os
import subprocess
import sys

import pytest

from models.settings import REPO_ROOT
from serving import model_config, versions
from tests.test_pusher import change, parse_config, run_pusher, trainer_model  # noqa: F401


@pytest.fixture
def serving_root(trainer_model, tmp_path):  # noqa: F811
  """A serving root with two sst2 versions (runs run-1 and run-2) and one news version."""
  root = tmp_path / 'serving'
  (tmp_path / 'work').mkdir()
  run_pusher(trainer_model, str(root / 'sst2'), str(tmp_path / 'work'), run_id='run-1',
             accuracy=0.81)
  change(trainer_model, 'second')
  run_pusher(trainer_model, str(root / 'sst2'), str(tmp_path / 'work'), run_id='run-2',
             accuracy=0.83, spans={'newest': 3, 'window': [2, 3], 'baseline': 2})
  run_pusher(trainer_model, str(root / 'news'), str(tmp_path / 'work'), run_id='run-3')
  return str(root)


def policy(root: str, name: str):
  [entry] = [entry for entry in parse_config(root).model_config_list.config if entry.name == name]
  return entry.model_version_policy


def parse_listing(text: str):
  """{model: (its policy line, {version: [pushed, accuracy, TF Serving, spans, run]})}."""
  models = {}
  for line in text.splitlines():
    if not line.startswith(' '):
      name, policy_text = line.split(': ')
      models[name] = (policy_text, {})
    elif line.split()[0].isdigit():
      version, *fields = line.split()
      models[name][1][int(version)] = fields
  return models


def run_versions(*args, env=None) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-m', 'serving.versions', *args], cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=120,
                        env={**os.environ, **(env or {})})


def test_list_shows_each_version_its_run_accuracy_and_what_serves(serving_root):
  first, second = model_config.versions(os.path.join(serving_root, 'sst2'))
  [news] = model_config.versions(os.path.join(serving_root, 'news'))
  # The serving directory from the environment, as the Pusher's is.
  result = run_versions('list', env={versions.SERVING_DIR_ENV: serving_root})
  assert result.returncode == 0, result.stderr
  listed = parse_listing(result.stdout)
  assert listed['sst2'][0] == 'newest 2 loaded'
  assert list(listed['sst2'][1]) == [second, first]  # newest first
  assert listed['sst2'][1][second][1:] == ['0.8300', 'serves', '2-3', 'run-2']
  assert listed['sst2'][1][first][1:] == ['0.8100', 'loaded', '-', 'run-1']  # no spans
  assert listed['news'][1][news][1:] == ['-', 'serves', '-', 'run-3']  # no accuracy recorded


def test_pin_serves_one_version_and_unpin_the_newest_again(serving_root, capsys):
  first, second = model_config.versions(os.path.join(serving_root, 'sst2'))
  assert versions.main(['--serving-dir', serving_root, 'pin', 'sst2', str(first)]) == 0
  assert list(policy(serving_root, 'sst2').specific.versions) == [first]
  assert policy(serving_root, 'news').latest.num_versions == 2  # other models keep theirs
  policy_text, rows = parse_listing(capsys.readouterr().out)['sst2']
  assert policy_text == f'pinned to {first}'
  assert (rows[first][2], rows[second][2]) == ('serves', '-')

  assert versions.main(['--serving-dir', serving_root, 'unpin', 'sst2']) == 0
  assert policy(serving_root, 'sst2').WhichOneof('policy_choice') == 'latest'
  assert model_config.read_pins(serving_root) == {}


@pytest.mark.parametrize('args, message', [
    (['pin', 'imdb', '1'], "No model 'imdb' under {root}; models there: news, sst2."),
    (['unpin', 'imdb'], "No model 'imdb' under {root}; models there: news, sst2."),
    (['pin', 'sst2', '7'], 'sst2 has no version 7; its versions: {sst2}.'),
])
def test_unknown_models_and_versions_are_refused_in_one_line(serving_root, args, message,
                                                             capsys):
  before = parse_config(serving_root)
  assert versions.main(['--serving-dir', serving_root, *args]) == 2
  sst2 = ', '.join(map(str, model_config.versions(os.path.join(serving_root, 'sst2'))))
  assert capsys.readouterr().err == 'error: ' + message.format(root=serving_root,
                                                               sst2=sst2) + '\n'
  assert parse_config(serving_root) == before
