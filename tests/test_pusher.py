"""The Pusher's executor: a version appears whole or not at all, an unchanged model is not
pushed again, and every push leaves TF Serving's models.config listing every pushed model, and a
record of where the version came from. Runs the real executor on a real exported model."""

import errno
import json
import os

import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import io_utils, proto_utils

from components import atomic_pusher
from components.class_checked_evaluator import ACCURACY_KEY
from components.cleaning.component import SPANS_KEY
from models import features
from serving import model_config, push_record, versions


def run_pusher(model_dir: str, base_directory: str, work_dir: str, blessed: bool = True,
               run_id: str = 'run-1', accuracy: float = None, spans: dict = None):
  """The executor's Do on `model_dir`, in pipeline run `run_id`, blessed with `accuracy` (and a
  span run's SpanPlan), as the Evaluator records them; returns the PushedModel artifact."""
  model = standard_artifacts.Model()
  model.uri = os.path.dirname(model_dir)  # the Trainer's layout: <uri>/Format-Serving
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = os.path.join(work_dir, 'blessing')
  blessing.set_int_custom_property('blessed', int(blessed))
  if accuracy is not None:
    blessing.set_float_custom_property(ACCURACY_KEY, accuracy)
  if spans is not None:
    blessing.set_string_custom_property(SPANS_KEY, json.dumps(spans))
  pushed = standard_artifacts.PushedModel()
  pushed.uri = os.path.join(work_dir, f'pushed_{len(os.listdir(work_dir))}')
  destination = pusher_pb2.PushDestination(
      filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=base_directory))
  context = base_executor.BaseExecutor.Context(pipeline_run_id=run_id)
  atomic_pusher.Executor(context).Do(
      {'model': [model], 'model_blessing': [blessing]}, {'pushed_model': [pushed]},
      {'push_destination': proto_utils.proto_to_json(destination)})
  return pushed


def change(model_dir: str, text: str) -> None:
  """Makes the model at `model_dir` another model (another digest) for the Pusher."""
  with open(os.path.join(model_dir, 'assets', 'changed.txt'), 'w') as f:
    f.write(text)


def parse_config(serving_root) -> model_server_config_pb2.ModelServerConfig:
  with open(os.path.join(serving_root, model_config.CONFIG_NAME), encoding='utf-8') as f:
    return text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())


@pytest.fixture
def trainer_model(tiny_model_dir, tmp_path):
  """The tiny exported model where the Trainer puts models: <model uri>/Format-Serving."""
  model_dir = str(tmp_path / 'model' / 'Format-Serving')
  io_utils.copy_dir(tiny_model_dir, model_dir)
  return model_dir


def test_a_push_creates_a_whole_version_and_no_staging_copy(trainer_model, tmp_path):
  base = str(tmp_path / 'serving')
  (tmp_path / 'work').mkdir()
  pushed = run_pusher(trainer_model, base, str(tmp_path / 'work'))
  [version] = [name for name in os.listdir(base) if name != push_record.RECORD_NAME]
  assert version.isdigit() and pushed.get_int_custom_property('pushed') == 1
  assert atomic_pusher.relative_files(os.path.join(base, version)) == (
      atomic_pusher.relative_files(trainer_model))
  loaded = tf.saved_model.load(os.path.join(base, version))
  assert features.SERVING_SIGNATURE in loaded.signatures


def test_an_unchanged_model_is_not_pushed_again(trainer_model, tmp_path):
  base = str(tmp_path / 'serving')
  (tmp_path / 'work').mkdir()
  first = run_pusher(trainer_model, base, str(tmp_path / 'work'))
  second = run_pusher(trainer_model, base, str(tmp_path / 'work'))
  assert len(model_config.versions(base)) == 1
  assert second.get_int_custom_property('pushed') == 0
  assert second.get_string_custom_property(atomic_pusher.ALREADY_LIVE_KEY) == (
      first.get_string_custom_property('pushed_destination'))


def test_another_model_gets_a_higher_version(trainer_model, tmp_path):
  base = str(tmp_path / 'serving')
  (tmp_path / 'work').mkdir()
  run_pusher(trainer_model, base, str(tmp_path / 'work'))
  change(trainer_model, 'another model')
  run_pusher(trainer_model, base, str(tmp_path / 'work'))
  first, second = model_config.versions(base)
  assert second > first


def test_a_failed_copy_leaves_no_version_and_no_staging_copy(trainer_model, tmp_path,
                                                            monkeypatch):
  base = str(tmp_path / 'serving')
  (tmp_path / 'work').mkdir()
  copy = fileio.copy
  copied = []

  def disk_full_after_two_files(source, destination, overwrite=False):
    if len(copied) == 2:
      raise OSError(errno.ENOSPC, 'No space left on device', destination)
    copied.append(destination)
    copy(source, destination, overwrite)

  monkeypatch.setattr(fileio, 'copy', disk_full_after_two_files)
  with pytest.raises(OSError, match='No space left'):
    run_pusher(trainer_model, base, str(tmp_path / 'work'))
  assert os.listdir(base) == []  # TF Serving finds nothing to load
  monkeypatch.setattr(fileio, 'copy', copy)
  run_pusher(trainer_model, base, str(tmp_path / 'work'))  # the next run pushes it whole
  assert len(model_config.versions(base)) == 1


def test_an_incomplete_copy_is_caught_before_it_becomes_a_version(trainer_model, tmp_path):
  staging = tmp_path / 'copy'
  io_utils.copy_dir(trainer_model, str(staging))
  os.remove(staging / 'saved_model.pb')
  with pytest.raises(OSError, match='incomplete'):
    atomic_pusher.check_copy(trainer_model, str(staging))
  variables = next((staging / 'variables').glob('variables.data-*'))
  io_utils.copy_file(os.path.join(trainer_model, 'saved_model.pb'),
                     str(staging / 'saved_model.pb'))
  with open(variables, 'r+b') as f:
    f.truncate(10)
  with pytest.raises(OSError, match='wrong size'):
    atomic_pusher.check_copy(trainer_model, str(staging))


def test_a_model_that_is_not_blessed_is_not_pushed(trainer_model, tmp_path):
  base = str(tmp_path / 'serving')
  (tmp_path / 'work').mkdir()
  pushed = run_pusher(trainer_model, base, str(tmp_path / 'work'), blessed=False)
  assert pushed.get_int_custom_property('pushed') == 0 and not os.path.exists(base)


def test_every_push_configures_every_pushed_model_for_tf_serving(trainer_model, tmp_path):
  root = tmp_path / 'serving'
  (tmp_path / 'work').mkdir()
  run_pusher(trainer_model, str(root / 'sst2'), str(tmp_path / 'work'), run_id='run-1',
             accuracy=0.875)
  config = parse_config(root)
  [sst2] = config.model_config_list.config
  assert (sst2.name, sst2.base_path, sst2.model_platform) == (
      'sst2', str(root / 'sst2'), 'tensorflow')
  assert sst2.model_version_policy.latest.num_versions == 2

  # Another model under the same root (a dataset's own name, a distilled student) joins it.
  change(trainer_model, 'news')
  run_pusher(trainer_model, str(root / 'news_student'), str(tmp_path / 'work'), run_id='run-2')
  config = parse_config(root)
  assert [(entry.name, entry.base_path) for entry in config.model_config_list.config] == [
      ('news_student', str(root / 'news_student')), ('sst2', str(root / 'sst2'))]
  assert config == model_config.build_config(str(root))
  # Written under a temporary name and renamed: nothing else is left beside it.
  assert sorted(os.listdir(root)) == ['models.config', 'news_student', 'sst2']

  [version] = model_config.versions(str(root / 'sst2'))
  with open(root / 'sst2' / push_record.RECORD_NAME, encoding='utf-8') as f:
    record = json.load(f)[str(version)]
  assert (record['run_id'], record['accuracy'], record['model']) == ('run-1', 0.875,
                                                                      trainer_model)
  [student_push] = push_record.read_pushes(str(root / 'news_student')).values()
  assert (student_push.run_id, student_push.accuracy) == ('run-2', None)


def test_a_pin_holds_through_later_pushes(trainer_model, tmp_path):
  root = tmp_path / 'serving'
  (tmp_path / 'work').mkdir()
  run_pusher(trainer_model, str(root / 'sst2'), str(tmp_path / 'work'))
  [first] = model_config.versions(str(root / 'sst2'))
  versions.pin(str(root), 'sst2', first)
  change(trainer_model, 'a newer model')
  run_pusher(trainer_model, str(root / 'sst2'), str(tmp_path / 'work'))
  assert len(model_config.versions(str(root / 'sst2'))) == 2
  [entry] = parse_config(root).model_config_list.config
  assert list(entry.model_version_policy.specific.versions) == [first]
