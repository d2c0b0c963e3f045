"""Pushed versions, and which one TF Serving serves: list them, pin one, unpin.

    python -m serving.versions [--serving-dir DIR] list
    python -m serving.versions [--serving-dir DIR] pin MODEL VERSION
    python -m serving.versions [--serving-dir DIR] unpin MODEL

The serving directory (default: $TEXT_CLASSIFIER_SERVING_DIR, else <repo>/serving_model) is where
the Pusher writes `<model>/<version>/`. `pin` and `unpin` rewrite its `models.config`, which a
server started with `--model_config_file_poll_wait_seconds` re-reads: a pinned model serves only
that version; an unpinned one serves its newest and keeps the one before it loaded.
"""

import argparse
import os
import sys
from typing import List

from models.settings import REPO_ROOT
from serving import model_config, push_record

SERVING_DIR_ENV = 'TEXT_CLASSIFIER_SERVING_DIR'


class UnknownModelError(ValueError):
  """A model or version that is not under the serving directory."""


def default_serving_dir() -> str:
  return os.environ.get(SERVING_DIR_ENV, os.path.join(REPO_ROOT, 'serving_model'))


def check_model(serving_dir: str, model: str) -> List[int]:
  """The model's versions; UnknownModelError when it has none there."""
  names = model_config.model_names(serving_dir)
  if model not in names:
    raise UnknownModelError(f'No model {model!r} under {serving_dir}; models there: '
                            f'{", ".join(names) or "none"}.')
  return model_config.versions(os.path.join(serving_dir, model))


def pin(serving_dir: str, model: str, version: int) -> None:
  existing = check_model(serving_dir, model)
  if version not in existing:
    raise UnknownModelError(f'{model} has no version {version}; its versions: '
                            f'{", ".join(map(str, existing))}.')
  model_config.write_pins(serving_dir, {**model_config.read_pins(serving_dir), model: version})
  model_config.write_config(serving_dir)


def unpin(serving_dir: str, model: str) -> None:
  check_model(serving_dir, model)
  pins = model_config.read_pins(serving_dir)
  pins.pop(model, None)
  model_config.write_pins(serving_dir, pins)
  model_config.write_config(serving_dir)


def served_versions(entry) -> List[int]:
  """The versions a config entry makes TF Serving load, of those that exist."""
  existing = model_config.versions(entry.base_path)
  policy = entry.model_version_policy
  if policy.WhichOneof('policy_choice') == 'specific':
    return [version for version in existing if version in policy.specific.versions]
  return existing[-policy.latest.num_versions:]


def listing(serving_dir: str) -> str:
  """Each model's policy and versions, newest first: pushed when, from which run, its accuracy,
  and what TF Serving does with it (`serves`: requests without a version; `loaded`: ready for a
  request that names it)."""
  config = model_config.build_config(serving_dir)
  if not config.model_config_list.config:
    return f'No pushed model under {serving_dir}.'
  lines = []
  for entry in config.model_config_list.config:
    policy = entry.model_version_policy
    pinned = policy.WhichOneof('policy_choice') == 'specific'
    lines.append(f'{entry.name}: ' + (f'pinned to {policy.specific.versions[0]}' if pinned else
                                      f'newest {policy.latest.num_versions} loaded'))
    lines.append(f'  {"version":<12} {"pushed (UTC)":<26} {"accuracy":>8}  {"TF Serving":<10} '
                 f'{"spans":<8} run')
    loaded = served_versions(entry)
    pushes = push_record.read_pushes(entry.base_path)
    for version in reversed(model_config.versions(entry.base_path)):
      push = pushes.get(version)
      state = 'serves' if version == loaded[-1] else 'loaded' if version in loaded else '-'
      accuracy = f'{push.accuracy:.4f}' if push and push.accuracy is not None else '-'
      spans = (f'{push.spans[0]}-{push.spans[-1]}' if len(push.spans) > 1 else str(push.spans[0])
               ) if push and push.spans else '-'
      lines.append(f'  {version:<12} {push.pushed_at if push else "-":<26} {accuracy:>8}  '
                   f'{state:<10} {spans:<8} {(push.run_id if push else None) or "-"}')
  return '\n'.join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--serving-dir', default=default_serving_dir(),
                      help=f'the Pusher\'s serving directory (default: ${SERVING_DIR_ENV}, else '
                           '<repo>/serving_model)')
  commands = parser.add_subparsers(dest='command', required=True)
  commands.add_parser('list', help='each model\'s versions and which one TF Serving serves')
  pin_parser = commands.add_parser('pin', help='serve only VERSION of MODEL')
  pin_parser.add_argument('model')
  pin_parser.add_argument('version', type=int)
  unpin_parser = commands.add_parser('unpin', help='serve MODEL\'s newest version again')
  unpin_parser.add_argument('model')
  args = parser.parse_args(argv)
  try:
    if args.command == 'pin':
      pin(args.serving_dir, args.model, args.version)
    elif args.command == 'unpin':
      unpin(args.serving_dir, args.model)
  except UnknownModelError as error:
    print(f'error: {error}', file=sys.stderr)
    return 2
  print(listing(args.serving_dir))
  return 0


if __name__ == '__main__':
  sys.exit(main())
