"""The layers point one way: `pipeline/` assembles the others; `components/`, `models/` and
`serving/` never import `pipeline/`; `models/` imports nothing outside itself; `serving/` may use
`models/`; `components/` only the shared leaves `models/features.py`, `models/settings.py`,
`models/dataset_file.py`, and `serving/model_config.py` and `serving/push_record.py` (the
Pusher writes TF Serving's config and its push records), which import nothing of this project
but each other. Imports inside functions count too."""

import ast
import glob
import os

import pytest

from models.settings import REPO_ROOT

PACKAGES = ('benchmarks', 'components', 'models', 'pipeline', 'serving', 'tests')
LEAVES = ('models.dataset_file', 'models.features', 'models.settings', 'serving.model_config',
          'serving.push_record')
# Layer -> the modules (and packages) of other layers it may import.
ALLOWED = {
    'models': (),
    'serving': ('models',),
    'components': LEAVES,
    'pipeline': ('components', 'models', 'serving'),
}


def imported_modules(path: str, root: str):
  """This project's modules that the file at `path` imports: `from a import b` names a.b when
  that is a module, else a."""
  with open(path, encoding='utf-8') as f:
    tree = ast.parse(f.read(), path)
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names = [f'{node.module}.{alias.name}' if is_module(f'{node.module}.{alias.name}', root)
               else node.module for alias in node.names]
    else:
      continue
    yield from (name for name in names if name.split('.')[0] in PACKAGES)


def is_module(name: str, root: str) -> bool:
  path = os.path.join(root, *name.split('.'))
  return os.path.isfile(path + '.py') or os.path.isdir(path)


def wrong_edges(layer: str, root: str = REPO_ROOT):
  edges = []
  for path in sorted(glob.glob(os.path.join(root, layer, '**', '*.py'), recursive=True)):
    source = os.path.splitext(os.path.relpath(path, root))[0].replace(os.sep, '.')
    for target in imported_modules(path, root):
      if source in LEAVES:
        allowed = target in LEAVES
      else:
        allowed = target.split('.')[0] == layer or any(
            target == name or target.startswith(name + '.') for name in ALLOWED[layer])
      if not allowed:
        edges.append(f'{source} -> {target}')
  return edges


@pytest.mark.parametrize('layer', sorted(ALLOWED))
def test_imports_point_one_way(layer):
  assert wrong_edges(layer) == []


def test_a_wrong_edge_is_found(tmp_path):
  (tmp_path / 'models').mkdir()
  (tmp_path / 'pipeline').mkdir()
  (tmp_path / 'pipeline' / 'config.py').write_text('')
  (tmp_path / 'models' / 'settings.py').write_text('from models import trainer\n')
  (tmp_path / 'models' / 'trainer.py').write_text('def f():\n  from pipeline import config\n')
  assert wrong_edges('models', str(tmp_path)) == ['models.settings -> models.trainer',
                                                  'models.trainer -> pipeline.config']
