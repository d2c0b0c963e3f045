"""Continuous training, simulated: a dataset's training data arrives in K spans, one after another,
and the pipeline runs once per span, as a schedule would run it.

    python -m benchmarks.span_simulation [--dataset FILE] [--spans 4] [--window 2]
        [--label-shift SPAN] [--architecture transformer|pretrained] [--max-steps N]
        [--warm-start | --no-warm-start] [--output DIR]

The dataset file's training rows (default: SST-2's) are shuffled with a fixed seed and cut into K
spans, written as JSON Lines under <output>/data/span-<k>/train.jsonl just before run k; its eval
file (or the newest span, when it has none) judges every run. --label-shift S keeps 90% of span
S's rows in the last class (a planted drift, which the run over span S stops on; the span after it
drifts back). All runs share one pipeline root, metadata store and serving folder under <output>,
so each run compares with the previous span, starts from the last blessed model when warm
starting (the pipeline's default for a pretrained backbone; --warm-start / --no-warm-start), and
is judged against it. One line per span: its rows, the drift verdict and values,
the candidate's and the live model's accuracy, blessed, pushed, minutes.
"""

import argparse
import dataclasses
import json
import os
import random
import time
from typing import List, Optional

from pipeline import progress

progress.silence_before_imports()  # before TensorFlow is imported: a line per component, no noise
# pylint: disable=wrong-import-position
from components.cleaning import readers  # noqa: E402
from components.cleaning.rules import RawRecord  # noqa: E402
from models.settings import with_overrides  # noqa: E402
from pipeline import local_runner, run_record  # noqa: E402
from pipeline.config import PipelineConfig  # noqa: E402
from pipeline.run_record import ACCURACY_METRIC  # noqa: E402

SHIFTED_SHARE = 0.9
SEED = 0


def read_rows(config: PipelineConfig, pattern: str) -> List[dict]:
  """The text and label fields of every parsable record of the files `pattern` matches."""
  settings = config.ingestion
  columns = [*settings.text_columns, settings.label_column]
  rows = []
  for path in readers.match_files([os.path.join(settings.data_root, pattern)]):
    for record in readers.read_records(path, 'train', settings.input_format,
                                       settings.text_columns, settings.label_column,
                                       settings.column_names):
      if isinstance(record, RawRecord) and record.fields is not None:
        rows.append({column: record.fields.get(column) for column in columns})
  return rows


def write_jsonl(rows: List[dict], path: str) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w', encoding='utf-8') as f:
    f.writelines(json.dumps(row, ensure_ascii=False) + '\n' for row in rows)


def cut_spans(rows: List[dict], spans: int, label_column: str, shifted_label: str,
              label_shift: Optional[int]) -> List[List[dict]]:
  rows = random.Random(SEED).sample(rows, len(rows))
  size = len(rows) // spans
  chunks = [rows[k * size:(k + 1) * size] for k in range(spans)]
  if label_shift:
    chunk = chunks[label_shift - 1]
    shifted = [row for row in chunk if str(row[label_column]) == shifted_label]
    others = [row for row in chunk if str(row[label_column]) != shifted_label]
    keep = round(len(shifted) * (1 - SHIFTED_SHARE) / SHIFTED_SHARE)
    chunks[label_shift - 1] = shifted + others[:keep]
  return chunks


def span_line(span: int, rows: int, summary, error: str, minutes: float) -> str:
  if summary is None:
    return f'span {span}: {rows} rows; stopped: {error}; {minutes:.1f} min'
  drift = summary.drift or {}
  values = ', '.join(f"{m['feature']} {m['value']:.4f}/{m['threshold']:.4f}"
                     for m in drift.get('measurements', []) if m['value'] is not None)
  overall = summary.model.metrics.get('overall', {})
  accuracy, change = overall.get(ACCURACY_METRIC), overall.get(f'{ACCURACY_METRIC}_diff')
  live = f'{accuracy - change:.4f}' if change is not None else 'none'
  pushed = summary.model.pushed_to
  return (f"span {span}: {rows} rows; drift: {drift.get('verdict', '-')}"
          + (f' ({values})' if values else '')
          + f'; accuracy {accuracy:.4f} vs live {live}; blessed {summary.model.blessed}; '
          + f"pushed {os.path.basename(pushed) if pushed else 'no'}; {minutes:.1f} min")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--dataset', default='', metavar='FILE',
                      help='the dataset file (default: pipeline/datasets/sst2.yaml)')
  parser.add_argument('--spans', type=int, default=4)
  parser.add_argument('--window', type=int, default=2, help='spans trained on (default 2)')
  parser.add_argument('--label-shift', type=int, default=None, metavar='SPAN',
                      help='plant a label shift (90%% in the last class) in this span')
  parser.add_argument('--architecture', choices=('transformer', 'pretrained'),
                      default='transformer', help='the model (default: the from-scratch one)')
  parser.add_argument('--max-steps', type=int, default=None, help='training steps per run')
  parser.add_argument('--warm-start', action=argparse.BooleanOptionalAction, default=None,
                      help='start each run from the last blessed model (default: the '
                           "pipeline's: on for a pretrained backbone)")
  parser.add_argument('--output', default='span_simulation', metavar='DIR')
  args = parser.parse_args()
  if args.label_shift is not None and not 1 <= args.label_shift <= args.spans:
    parser.error(f'--label-shift takes a span from 1 to {args.spans}')

  output = os.path.abspath(args.output)
  config = PipelineConfig.from_env(args.dataset)
  settings = config.ingestion
  if not settings.label_names:
    raise SystemExit('The simulation needs the dataset file to list its labels.')
  data_root = os.path.join(output, 'data')
  if settings.eval_pattern:
    write_jsonl(read_rows(config, settings.eval_pattern), os.path.join(data_root, 'eval.jsonl'))
  chunks = cut_spans(read_rows(config, settings.train_pattern), args.spans,
                     settings.label_column, settings.label_names[-1], args.label_shift)
  training = {'warm_start': args.warm_start,
              **({'max_steps': args.max_steps} if args.max_steps is not None else {})}
  config = with_overrides(config, {
      'model': {'architecture': args.architecture},
      'training': training,
      'ingestion': {'data_root': data_root, 'train_pattern': 'span-{SPAN}/train.jsonl',
                    'eval_pattern': 'eval.jsonl' if settings.eval_pattern else '',
                    'input_format': 'jsonl', 'column_names': [], 'window': args.window}})
  config = dataclasses.replace(config, output_dir=os.path.join(output, 'tfx_output'),
                               serving_model_dir=os.path.join(output, 'serving_model'))
  print(f'{len(chunks)} spans of {", ".join(str(len(c)) for c in chunks)} rows; window '
        f'{args.window}; {args.architecture}; warm start {config.warm_start}; output {output}',
        flush=True)
  started = time.time()
  for span, rows in enumerate(chunks, start=1):
    write_jsonl(rows, os.path.join(data_root, f'span-{span}', 'train.jsonl'))
    run_id = f'span-{span}-{time.time():.0f}'
    run_started, summary, error = time.time(), None, ''
    try:
      pipeline = local_runner.build(config)
      progress.quiet_logging(total_components=len(pipeline.components))
      local_runner.runner(run_id).run(pipeline)
      summary = run_record.read_run(config, run_id)
    except Exception as failure:  # pylint: disable=broad-except
      error = f'{type(failure).__name__}: {str(failure).splitlines()[0]}'
    print(span_line(span, len(rows), summary, error, (time.time() - run_started) / 60),
          flush=True)
  print(f'All {len(chunks)} runs: {(time.time() - started) / 60:.1f} min', flush=True)


if __name__ == '__main__':
  main()
