"""Where each pushed version came from: `pushes.json` in the model's base directory, written by
the Pusher at push time (TF Serving ignores names that are not version numbers).

{"<version>": {"pushed_at": ISO 8601 UTC, "run_id": the pipeline run, "model": the Model
artifact's URI, "accuracy": the Evaluator's overall accuracy, or null where unknown, "spans": the
spans it was trained on, or null without spans}}
"""

import dataclasses
import datetime
import json
import os
from typing import Dict, List, Optional

from tfx.dsl.io import fileio

from serving import model_config

RECORD_NAME = 'pushes.json'


@dataclasses.dataclass(frozen=True)
class Push:
  pushed_at: str
  run_id: Optional[str]
  model: str
  accuracy: Optional[float]
  spans: Optional[List[int]] = None  # absent from records written before spans


def read_pushes(base_directory: str) -> Dict[int, Push]:
  """{version: Push} for the versions pushed with a record (none for older pushes)."""
  path = os.path.join(base_directory, RECORD_NAME)
  if not fileio.exists(path):
    return {}
  with fileio.open(path) as f:
    return {int(version): Push(**fields) for version, fields in json.load(f).items()}


def record_push(base_directory: str, version: int, run_id: Optional[str], model: str,
                accuracy: Optional[float], spans: Optional[List[int]] = None) -> Push:
  """Adds `version`'s record, stamped now, to the base directory's pushes.json."""
  push = Push(pushed_at=datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds'),
              run_id=run_id, model=model, accuracy=accuracy, spans=spans)
  pushes = {**read_pushes(base_directory), version: push}
  model_config.write_atomically(
      os.path.join(base_directory, RECORD_NAME),
      json.dumps({str(v): dataclasses.asdict(p) for v, p in sorted(pushes.items())}, indent=2)
      + '\n')
  return push
