"""Preview the ingestion on files, without the pipeline.

    python -m components.cleaning --input data/*.csv --output /tmp/preview \
        [--eval-input dev.csv] [--text-column title --text-column body] [--label-column label] \
        [--format csv|tsv|jsonl] [--labels neg pos]

Writes DIR/examples/Split-{train,eval}/ (gzipped tf.Examples), DIR/cleaning_report.json and
DIR/rejected.jsonl, prints a summary, and exits 1 with a message when the input is unusable
(a missing file or column, a compressed file that is cut off or corrupt, no rows).
Defaults are the pipeline's (pipeline/config.py), so the preview is what the pipeline would do.
"""

import argparse
import dataclasses
import os
import sys
from typing import List, Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from components.cleaning import readers, transforms
from models.settings import IngestionSettings


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  defaults = IngestionSettings()
  parser = argparse.ArgumentParser(prog='python -m components.cleaning',
                                   description='Clean and split raw text files into tf.Examples.')
  parser.add_argument('--input', action='append', required=True, metavar='PATH',
                      help='file or glob (repeatable); CSV, TSV or JSON Lines, optionally .gz')
  parser.add_argument('--eval-input', action='append', default=[], metavar='PATH',
                      help='files for the eval split; without it eval is a hash split of --input')
  parser.add_argument('--output', required=True, metavar='DIR')
  parser.add_argument('--text-column', action='append', dest='text_columns', metavar='NAME',
                      help=f'repeatable; joined with a space (default {defaults.text_columns})')
  parser.add_argument('--label-column', default=defaults.label_column, metavar='NAME')
  parser.add_argument('--format', choices=readers.FORMATS, default=defaults.input_format,
                      help='default: from each file extension')
  parser.add_argument('--labels', nargs='*', default=list(defaults.label_names), metavar='NAME',
                      help='allowed labels; give the flag with no names to accept any label '
                           f'(default {list(defaults.label_names)})')
  parser.add_argument('--eval-percent', type=int, default=defaults.eval_percent)
  parser.add_argument('--beam-arg', action='append', dest='beam_args', metavar='OPTION',
                      help='Beam pipeline option, repeatable, e.g. '
                           '--beam-arg=--direct_running_mode=multi_processing '
                           '(default: DirectRunner in memory)')
  return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  settings = dataclasses.replace(
      IngestionSettings(),
      text_columns=tuple(args.text_columns or IngestionSettings().text_columns),
      label_column=args.label_column,
      input_format=args.format,
      label_names=tuple(args.labels),
      eval_percent=args.eval_percent)
  try:
    if args.eval_input:
      input_files = {'train': readers.match_files(args.input),
                     'eval': readers.match_files(args.eval_input)}
    else:
      input_files = {'': readers.match_files(args.input)}
    for paths in input_files.values():
      readers.check_headers(paths, settings)
  except readers.InputError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1

  report_path = os.path.join(args.output, transforms.REPORT_FILE)
  beam_args = args.beam_args or ['--direct_running_mode=in_memory']
  try:
    with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
      transforms.run(pipeline, input_files, settings, os.path.join(args.output, 'examples'),
                     report_path, os.path.join(args.output, transforms.REJECTED_FILE))
  except readers.CorruptFileError as e:
    # Corrupt files are reported, not raised; this is one that changed after it was checked.
    print(f'error: {e}', file=sys.stderr)
    return 1
  report = transforms.read_report(report_path)
  print(transforms.format_report(report))
  print(f'Wrote {args.output}/examples, {report_path} and '
        f'{args.output}/{transforms.REJECTED_FILE}.')
  try:
    transforms.check_usable(report, settings.max_eval_rejected_percent)
  except transforms.IngestionError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
