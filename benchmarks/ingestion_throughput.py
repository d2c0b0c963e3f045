"""Rows/s and peak memory of the ingestion (components/cleaning) on SST-2 and on generated files.

    python -m benchmarks.ingestion_throughput [--rows 250000 500000 1000000]
        [--beam-args=--direct_running_mode=multi_processing --beam-args=--direct_num_workers=2]

Each measurement runs the ingestion's Beam pipeline in a fresh process (so peak RSS is its own):
first on the full SST-2 train.tsv, then on generated CSV files of the given sizes (SST-2 phrases
made unique, with 1% exact duplicates, 0.5% empty texts and 0.5% malformed rows mixed in). Time
per row that stays flat as rows grow shows the pipeline scales linearly.
"""

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time

from benchmarks.common import read_labelled_tsv
from models.settings import IngestionSettings, as_custom_config

RUN_ONE = '''
import json, resource, sys
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from components.cleaning import readers, transforms
from models.settings import IngestionSettings, from_custom_config
settings = from_custom_config(IngestionSettings, json.loads(sys.argv[1]))
out = sys.argv[2]
files = {'': readers.match_files([sys.argv[3]])}
with beam.Pipeline(options=PipelineOptions(sys.argv[4:])) as p:
  transforms.run(p, files, settings, out + '/examples', out + '/report.json',
                 out + '/rejected.jsonl')
report = transforms.read_report(out + '/report.json')
# Peak RSS of this process and of its largest worker process (multi_processing mode), in KiB.
report['peak_kb'] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps(report))
'''


def generate_csv(path: str, rows: int, sentences, seed: int = 0) -> None:
  rng = random.Random(seed)
  with open(path, 'w', encoding='utf-8', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['text', 'label'])
    for i in range(rows):
      roll = rng.random()
      if roll < 0.005:
        f.write('malformed,row,with,too,many,fields\n')
      elif roll < 0.01:
        writer.writerow(['   ', rng.choice('01')])
      elif roll < 0.02 and i:
        writer.writerow([f'{sentences[(i - 1) % len(sentences)]} #{i - 1}', '1'])
      else:
        writer.writerow([f'{sentences[i % len(sentences)]} #{i}', rng.choice('01')])


def measure(input_path: str, settings: IngestionSettings, beam_args) -> dict:
  with tempfile.TemporaryDirectory() as out:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, '-c', RUN_ONE, json.dumps(as_custom_config(settings)), out, input_path,
         *beam_args], capture_output=True, text=True, check=True)
    seconds = time.monotonic() - started
  report = json.loads(result.stdout.strip().splitlines()[-1])
  return {'rows': report['read'], 'seconds': seconds, 'rows_per_s': report['read'] / seconds,
          'peak_mb': report['peak_kb'] / 1024, 'kept': report['kept_total'],
          'rejected': report['rejected']}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--rows', type=int, nargs='*', default=[250_000, 500_000, 1_000_000])
  parser.add_argument('--beam-args', action='append', default=[],
                      help='Beam pipeline option, repeatable (default: DirectRunner in memory)')
  args = parser.parse_args()
  beam_args = args.beam_args or ['--direct_running_mode=in_memory']
  sst2 = IngestionSettings()
  train_path = os.path.join(sst2.data_root, sst2.train_pattern)
  sentences, _ = read_labelled_tsv(train_path, sst2.text_columns[0], sst2.label_column)
  print(f'Beam options: {beam_args}')
  print(f"{'input':<28} {'rows':>9} {'seconds':>8} {'rows/s':>8} {'us/row':>7} {'peak MB':>8}")

  def show(name, m):
    print(f"{name:<28} {m['rows']:>9} {m['seconds']:>8.1f} {m['rows_per_s']:>8.0f} "
          f"{1e6 * m['seconds'] / m['rows']:>7.1f} {m['peak_mb']:>8.0f}", flush=True)

  show('sst2 train.tsv', measure(train_path, sst2, beam_args))
  generated = IngestionSettings(text_columns=('text',), label_column='label')
  with tempfile.TemporaryDirectory() as data_dir:
    for rows in args.rows:
      path = os.path.join(data_dir, f'generated_{rows}.csv')
      generate_csv(path, rows, sentences)
      show(f'generated {rows} rows', measure(path, generated, beam_args))
      os.remove(path)


if __name__ == '__main__':
  main()
