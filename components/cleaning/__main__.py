"""Preview the ingestion on files, without the pipeline.

    python -m components.cleaning --dataset my_data.yaml --output /tmp/preview [--strict]
    python -m components.cleaning --input data/*.csv --output /tmp/preview \
        [--eval-input dev.csv] [--text-column title --text-column body] [--label-column label] \
        [--format csv|tsv|jsonl] [--columns label title body] [--labels neg pos] [--strict]

With --dataset, the files and settings are the dataset file's (models/dataset_file.py), so the
preview is what the pipeline would do with it; flags override them. Without it, the pipeline's
cleaning defaults apply and any label is accepted (the report counts each).
Writes DIR/examples/Split-{train,eval}/ (gzipped tf.Examples), DIR/cleaning_report.json and
DIR/rejected.jsonl, and prints a summary with warnings (most rows rejected, eval rows lost).
Exits 1 with a message when the input is unusable (a missing file or column, a compressed file
that is cut off or corrupt, no rows), and with --strict also when there is a warning.
"""

import argparse
import os
import sys
from typing import List, Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from components.cleaning import readers, rules, spans, transforms
from models import dataset_file
from models.settings import IngestionSettings, with_overrides


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog='python -m components.cleaning',
                                   description='Clean and split raw text files into tf.Examples.')
  parser.add_argument('--dataset', metavar='FILE',
                      help='a dataset file (YAML or JSON): its files and settings')
  parser.add_argument('--input', action='append', metavar='PATH',
                      help='file or glob (repeatable); CSV, TSV or JSON Lines, optionally .gz '
                           '(default with --dataset: its training files)')
  parser.add_argument('--eval-input', action='append', metavar='PATH',
                      help='files for the eval split; without it eval is a hash split of --input')
  parser.add_argument('--output', required=True, metavar='DIR')
  parser.add_argument('--text-column', action='append', dest='text_columns', metavar='NAME',
                      help='repeatable; joined with a space')
  parser.add_argument('--label-column', metavar='NAME')
  parser.add_argument('--format', choices=readers.FORMATS, help='default: from each file extension')
  parser.add_argument('--columns', nargs='+', metavar='NAME',
                      help='the column names of CSV/TSV files without a header row')
  parser.add_argument('--labels', nargs='*', metavar='NAME',
                      help='allowed labels; give the flag with no names to accept any label')
  parser.add_argument('--eval-percent', type=int)
  parser.add_argument('--strict', action='store_true',
                      help='exit 1 on a warning too: most rows rejected, or eval rows lost')
  parser.add_argument('--beam-arg', action='append', dest='beam_args', metavar='OPTION',
                      help='Beam pipeline option, repeatable, e.g. '
                           '--beam-arg=--direct_running_mode=multi_processing '
                           '(default: DirectRunner in memory)')
  args = parser.parse_args(argv)
  if not args.dataset and not args.input:
    parser.error('give --dataset or --input')
  return args


def settings_and_files(args: argparse.Namespace):
  """(IngestionSettings, {split: paths}): the dataset file's, then the flags'."""
  if args.dataset:
    settings = with_overrides(IngestionSettings(),
                              dataset_file.load(args.dataset).get('ingestion', {}))
  else:
    settings = IngestionSettings(label_names=(), eval_pattern='')
  flags = {'text_columns': tuple(args.text_columns or ()), 'label_column': args.label_column,
           'input_format': args.format, 'column_names': tuple(args.columns or ()),
           'eval_percent': args.eval_percent}
  settings = with_overrides(
      settings, {name: value for name, value in flags.items() if value not in (None, ())})
  if args.labels is not None:  # [] too: any label; the dataset's display names no longer apply
    settings = with_overrides(settings, {'label_names': args.labels, 'label_display_names': []})
  if settings.has_spans and not args.input:
    # The newest span, as a run would read it (its eval and golden files too); not the older
    # spans a run reads beside it.
    newest = max(spans.spans_on_disk(settings.data_root, settings.train_pattern))
    files = spans.input_files(settings, spans.plan(settings, newest))
    return settings, {split: paths for split, paths in files.items()
                      if split not in spans.older_span_splits(settings.window)}
  train = args.input or [os.path.join(settings.data_root, settings.train_pattern)]
  evaluation = args.eval_input or (
      [os.path.join(settings.data_root, settings.eval_pattern)]
      if settings.eval_pattern and not args.input else [])
  files = ({'train': readers.match_files(train), 'eval': readers.match_files(evaluation)}
           if evaluation else {'': readers.match_files(train)})
  if settings.golden_pattern and not args.input:
    files[rules.GOLDEN_SPLIT] = readers.match_files(
        [os.path.join(settings.data_root, settings.golden_pattern)])
  return settings, files


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  try:
    settings, input_files = settings_and_files(args)
    for paths in input_files.values():
      readers.check_headers(paths, settings)
  except (readers.InputError, ValueError) as e:  # ValueError: a dataset file or settings
    print(f'error: {e}', file=sys.stderr)
    return 1

  report_path = os.path.join(args.output, transforms.REPORT_FILE)
  output_splits = transforms.output_splits(settings)
  beam_args = args.beam_args or ['--direct_running_mode=in_memory']
  try:
    with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
      transforms.run(pipeline, input_files, settings, os.path.join(args.output, 'examples'),
                     report_path, os.path.join(args.output, transforms.REJECTED_FILE),
                     output_splits)
  except readers.CorruptFileError as e:
    # Corrupt files are reported, not raised; this is one that changed after it was checked.
    print(f'error: {e}', file=sys.stderr)
    return 1
  report = transforms.read_report(report_path)
  print(transforms.format_report(report))
  print(f'Wrote {args.output}/examples, {report_path} and '
        f'{args.output}/{transforms.REJECTED_FILE}.')
  try:
    transforms.check_usable(report, settings.max_eval_rejected_percent, output_splits)
  except transforms.IngestionError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  warnings = transforms.warnings(report)
  for warning in warnings:
    print(f'WARNING: {warning}.', file=sys.stderr)
  return 1 if warnings and args.strict else 0


if __name__ == '__main__':
  sys.exit(main())
