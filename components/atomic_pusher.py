"""The Pusher's executor, made safe for a model server that watches the serving folder.

TFX's Pusher copies the model straight into `<base>/<version>/`, so a copy that fails half-way
(disk full, a lost connection) leaves a version directory that TF Serving's latest-version policy
tries to load; and an unchanged re-run pushes the same model again as a new version. This one:
  * copies into a staging directory beside the versions (TF Serving ignores names that are not
    numbers), checks that every file arrived whole, then moves it to its version number: on a
    local filesystem a rename, which is atomic; on object stores (gs://), where a directory cannot
    be renamed, file by file with saved_model.pb last (what TF Serving waits for), from the
    checked copy; a failed push removes its staging copy;
  * pushes nothing when the newest version already holds the same files, and says so in the
    PushedModel artifact (`already_live`), which the run summary reports;
  * records where a new version came from (serving/push_record.py: the run, the Model artifact,
    the Evaluator's accuracy) and rewrites TF Serving's `models.config` at the serving root, the
    base directory's parent, for every model there (serving/model_config.py).
"""

import hashlib
import json
import os
import time
from typing import Any, Dict, List, Tuple

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components.class_checked_evaluator import ACCURACY_KEY
from components.cleaning.component import SPANS_KEY
from serving import model_config, push_record
from serving.model_config import versions

STAGING_PREFIX = '.staging-'
ALREADY_LIVE_KEY = 'already_live'  # PushedModel property: the version that holds this model
_SAVED_MODEL = 'saved_model.pb'


def relative_files(directory: str) -> List[str]:
  """Every file under `directory`, as sorted paths relative to it."""
  files = []
  for root, _, names in fileio.walk(directory):
    relative_root = os.path.relpath(root, directory)
    files += [os.path.normpath(os.path.join(relative_root, name)) for name in names]
  return sorted(files)


def content_digest(directory: str) -> str:
  """A digest of every file's relative path and bytes: equal digests, the same model."""
  digest = hashlib.sha256()
  for name in relative_files(directory):
    digest.update(name.encode('utf-8') + b'\0')
    with fileio.open(os.path.join(directory, name), 'rb') as f:
      for chunk in iter(lambda f=f: f.read(1 << 20), b''):
        digest.update(chunk)
  return digest.hexdigest()


def check_copy(source: str, copy: str) -> None:
  """Raises OSError unless `copy` holds every file of `source` at its size."""
  expected = relative_files(source)
  copied = relative_files(copy)
  missing = sorted(set(expected) - set(copied))
  short = [name for name in expected if name in copied and
           fileio.stat(os.path.join(copy, name)).length !=
           fileio.stat(os.path.join(source, name)).length]
  if missing or short or _SAVED_MODEL not in copied:
    raise OSError(f'The copy of {source} in {copy} is incomplete: missing {missing}, '
                  f'wrong size {short}.')


def _is_local(path: str) -> bool:
  return '://' not in path


def publish(staging: str, serving_path: str) -> None:
  """Makes the checked staging copy the version directory `serving_path`."""
  if _is_local(serving_path):
    fileio.rename(staging, serving_path)  # atomic: the version appears whole or not at all
    return
  io_utils.copy_dir(staging, serving_path, deny_regex_patterns=[_SAVED_MODEL])
  io_utils.copy_file(os.path.join(staging, _SAVED_MODEL), os.path.join(serving_path, _SAVED_MODEL))
  fileio.rmtree(staging)


def push(model_path: str, base_directory: str) -> Tuple[str, bool]:
  """Pushes the SavedModel in `model_path` as a new version under `base_directory`, unless the
  newest version already holds the same model. Returns (the version's path, whether it is new)."""
  existing = versions(base_directory)
  if existing:
    newest = os.path.join(base_directory, str(existing[-1]))
    if content_digest(newest) == content_digest(model_path):
      logging.info('%s already holds this model; nothing to push.', newest)
      return newest, False
  # Seconds since the epoch, as TFX versions models, and above every existing version.
  version = max(int(time.time()), existing[-1] + 1 if existing else 0)
  staging = os.path.join(base_directory, f'{STAGING_PREFIX}{version}')
  serving_path = os.path.join(base_directory, str(version))
  try:
    if fileio.exists(staging):
      fileio.rmtree(staging)
    io_utils.copy_dir(model_path, staging)
    check_copy(model_path, staging)
    publish(staging, serving_path)
  except Exception:
    if fileio.exists(staging):
      fileio.rmtree(staging)
    raise
  return serving_path, True


class Executor(pusher_executor.Executor):
  """TFX's Pusher executor with `push` in place of its direct copy (filesystem destinations)."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    model_push = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.PUSHED_MODEL_KEY])
    if not self.CheckBlessing(input_dict):
      self._MarkNotPushed(model_push)
      return
    destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
                              destination)
    base_directory = destination.filesystem.base_directory
    model_path = self.GetModelPath(input_dict)
    serving_path, pushed = push(model_path, base_directory)
    if pushed:
      io_utils.copy_dir(model_path, model_push.uri)  # the PushedModel artifact archives it too
      self._MarkPushed(model_push, pushed_destination=serving_path,
                       pushed_version=os.path.basename(serving_path))
      blessing = artifact_utils.get_single_instance(
          input_dict[standard_component_specs.MODEL_BLESSING_KEY])
      push_record.record_push(base_directory, int(os.path.basename(serving_path)),
                              run_id=self._context.pipeline_run_id if self._context else None,
                              model=model_path, **self._provenance(blessing))
      logging.info('Model pushed to %s.', serving_path)
    else:
      self._MarkNotPushed(model_push)
      model_push.set_string_custom_property(ALREADY_LIVE_KEY, serving_path)
    model_config.write_config(os.path.dirname(base_directory))

  @staticmethod
  def _provenance(blessing: types.Artifact) -> Dict[str, Any]:
    """What the Evaluator recorded on the blessing (class_checked_evaluator): the accuracy, and
    a span run's spans."""
    spans = (json.loads(blessing.get_string_custom_property(SPANS_KEY))
             if blessing.has_custom_property(SPANS_KEY) else None)
    return {'accuracy': (blessing.get_float_custom_property(ACCURACY_KEY)
                         if blessing.has_custom_property(ACCURACY_KEY) else None),
            'spans': spans['window'] if spans else None}
