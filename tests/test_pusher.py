"""The Pusher's executor: a version appears whole or not at all, and an unchanged model is not
pushed again. Runs the real executor on a real exported model."""

import errno
import os

import pytest
import tensorflow as tf
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import io_utils, proto_utils

from components import atomic_pusher
from models import features


def run_pusher(model_dir: str, base_directory: str, work_dir: str, blessed: bool = True):
  """The executor's Do on `model_dir`; returns the PushedModel artifact."""
  model = standard_artifacts.Model()
  model.uri = os.path.dirname(model_dir)  # the Trainer's layout: <uri>/Format-Serving
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = os.path.join(work_dir, 'blessing')
  blessing.set_int_custom_property('blessed', int(blessed))
  pushed = standard_artifacts.PushedModel()
  pushed.uri = os.path.join(work_dir, f'pushed_{len(os.listdir(work_dir))}')
  destination = pusher_pb2.PushDestination(
      filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=base_directory))
  atomic_pusher.Executor().Do(
      {'model': [model], 'model_blessing': [blessing]}, {'pushed_model': [pushed]},
      {'push_destination': proto_utils.proto_to_json(destination)})
  return pushed


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
  [version] = os.listdir(base)
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
  assert len(os.listdir(base)) == 1
  assert second.get_int_custom_property('pushed') == 0
  assert second.get_string_custom_property(atomic_pusher.ALREADY_LIVE_KEY) == (
      first.get_string_custom_property('pushed_destination'))


def test_another_model_gets_a_higher_version(trainer_model, tmp_path):
  base = str(tmp_path / 'serving')
  (tmp_path / 'work').mkdir()
  run_pusher(trainer_model, base, str(tmp_path / 'work'))
  with open(os.path.join(trainer_model, 'assets', 'changed.txt'), 'w') as f:
    f.write('another model')
  run_pusher(trainer_model, base, str(tmp_path / 'work'))
  first, second = sorted(int(v) for v in os.listdir(base))
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
  assert len(os.listdir(base)) == 1


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
