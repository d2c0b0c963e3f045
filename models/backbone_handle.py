"""Where a backbone setting points, found without importing Keras: the configuration checks a
local backbone before anything runs, in a second, and models/backbone.py loads from it."""

import importlib.util
import os

PACKAGE_SCHEME = 'package://'


def resolve_handle(backbone: str) -> str:
  """The handle KerasHub's from_preset takes: 'package://pkg/dir' becomes that directory inside
  the installed package (found without importing it); anything else is returned as it is."""
  if not backbone.startswith(PACKAGE_SCHEME):
    return backbone
  package, _, folder = backbone[len(PACKAGE_SCHEME):].partition('/')
  spec = importlib.util.find_spec(package)
  if spec is None or not spec.submodule_search_locations:
    raise ValueError(f'Backbone {backbone!r}: the Python package {package!r} is not installed '
                     '(`make install` installs the default one, from requirements/backbone.txt).')
  path = os.path.join(list(spec.submodule_search_locations)[0], folder)
  if not os.path.isdir(path):
    raise ValueError(f'Backbone {backbone!r}: {path} is not a directory.')
  return path


def missing_local_backbone(backbone: str) -> str:
  """Why a backbone that should be on this machine is not ('' when it is, or is downloaded by
  name or handle): a 'package://' checkpoint, or a local directory (a path, not a preset name)."""
  if backbone.startswith(PACKAGE_SCHEME):
    try:
      resolve_handle(backbone)
    except ValueError as error:
      return str(error)
    return ''
  is_path = '://' not in backbone and (os.sep in backbone or backbone.startswith(('.', '~')))
  if is_path and not os.path.isdir(os.path.expanduser(backbone)):
    return f'model.backbone = {backbone!r}: no such directory.'
  return ''
