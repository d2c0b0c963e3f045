"""TF Serving's configuration for what the Pusher pushed: `models.config` at the serving root.

The serving root holds one base directory per model, `<root>/<model name>/<version>/`. The config
lists every model found there with its base path and version policy: the newest two versions
loaded (requests without a version get the newest, and the previous one is ready for a
rollback), or one pinned version. Pins live in `pins.json` beside it, so the config written after
every push keeps them. Both files are written under a temporary name and renamed, so a server
polling the config never reads half a file.
"""

import json
import os
from typing import Dict, List

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2
from tfx.dsl.io import fileio

CONFIG_NAME = 'models.config'
PINS_NAME = 'pins.json'
LATEST_VERSIONS = 2  # the newest serves, the one before it stays loaded for a rollback
_TEMPORARY_PREFIX = '.tmp-'


def versions(base_directory: str) -> List[int]:
  """The version numbers under a model's base directory, ascending (TF Serving loads the last)."""
  if not fileio.exists(base_directory):
    return []
  return sorted(int(name.rstrip('/')) for name in fileio.listdir(base_directory)
                if name.rstrip('/').isdigit())


def model_names(serving_root: str) -> List[str]:
  """The models under `serving_root`: its subdirectories that hold numeric versions."""
  if not fileio.exists(serving_root):
    return []
  return sorted(name.rstrip('/') for name in fileio.listdir(serving_root)
                if fileio.isdir(os.path.join(serving_root, name))
                and versions(os.path.join(serving_root, name.rstrip('/'))))


def write_atomically(path: str, text: str) -> None:
  """Writes `text` to `path` under a temporary name first, then renames it into place."""
  temporary = os.path.join(os.path.dirname(path), _TEMPORARY_PREFIX + os.path.basename(path))
  with fileio.open(temporary, 'w') as f:
    f.write(text)
  fileio.rename(temporary, path, overwrite=True)


def read_pins(serving_root: str) -> Dict[str, int]:
  """{model name: pinned version}."""
  path = os.path.join(serving_root, PINS_NAME)
  if not fileio.exists(path):
    return {}
  with fileio.open(path) as f:
    return {name: int(version) for name, version in json.load(f).items()}


def write_pins(serving_root: str, pins: Dict[str, int]) -> None:
  write_atomically(os.path.join(serving_root, PINS_NAME), json.dumps(pins, indent=2,
                                                                     sort_keys=True) + '\n')


def build_config(serving_root: str) -> model_server_config_pb2.ModelServerConfig:
  """One entry per model under `serving_root`: pinned to its pinned version while that version
  exists, else its newest LATEST_VERSIONS versions."""
  pins = read_pins(serving_root)
  config = model_server_config_pb2.ModelServerConfig()
  for name in model_names(serving_root):
    base_path = os.path.join(serving_root, name)
    entry = config.model_config_list.config.add(name=name, base_path=base_path,
                                                model_platform='tensorflow')
    if pins.get(name) in versions(base_path):
      entry.model_version_policy.specific.versions.append(pins[name])
    else:
      entry.model_version_policy.latest.num_versions = LATEST_VERSIONS
  return config


def read_config(serving_root: str) -> model_server_config_pb2.ModelServerConfig:
  with fileio.open(os.path.join(serving_root, CONFIG_NAME)) as f:
    return text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())


def write_config(serving_root: str) -> model_server_config_pb2.ModelServerConfig:
  """Writes `<serving_root>/models.config` for the models there now; returns what it wrote."""
  config = build_config(serving_root)
  text = ('# Written by serving/model_config.py after each push and by `python -m '
          'serving.versions`;\n# edits are overwritten: pin versions with that command.\n'
          + text_format.MessageToString(config))
  # What TF Serving will read: the text must parse back to the same config.
  if text_format.Parse(text, model_server_config_pb2.ModelServerConfig()) != config:
    raise ValueError(f'The TF Serving config for {serving_root} does not parse back.')
  write_atomically(os.path.join(serving_root, CONFIG_NAME), text)
  return config
