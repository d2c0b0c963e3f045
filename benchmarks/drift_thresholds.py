"""The drift distances the pipeline's drift check (components/drift_gate.py) measures between two
spans, for three cases, to choose its default thresholds (models/settings.py DriftSettings).

    python -m benchmarks.drift_thresholds [--data-root DIR] [--span-rows 8000] [--seeds 1 2 3]

Per seed, SST-2's train.tsv is cleaned and de-duplicated as ingestion does, shuffled, and span A
is its first N rows. Span B is
  random re-split   the next N rows (no drift: the distances are sampling noise);
  label shift       N other rows, 90% of them label '1';
  other domain      N sentences from Python standard-library docstrings, lower-cased, labelled
                    at random with span A's label shares.
Both spans become the tf.Examples a span run writes (text, label, word_count, words), their
statistics are computed as StatisticsGen does (TFDV, default StatsOptions) and compared as
DistributionValidator does (schema inferred from span A's statistics, with the drift gate's
comparators). The table has each distance's mean and max over seeds; then, per distance, the
lowest threshold that passes every random re-split with a 3x margin, and whether it flags the
label shift (on label) and the other domain (on word_count or words).
"""

import argparse
import collections
import importlib
import inspect
import math
import os
import random
import re
import sys
import tempfile
import time
from typing import Dict, List, Sequence

import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.utils import path, schema_util

from benchmarks.common import read_labelled_tsv
from components import drift_gate
from components.cleaning import rules
from components.cleaning.transforms import to_example
from models.settings import DriftSettings, IngestionSettings

CASES = ('random re-split', 'label shift', 'other domain')
SHIFTED_LABEL, SHIFTED_SHARE = '1', 0.9
MARGIN = 3.0  # a threshold at least this many times the random re-splits' largest distance
# Standard-library modules whose docstrings (module, public functions and classes, and the
# classes' public methods) are the other domain: ~8,600 distinct sentences on Python 3.11.
DOC_MODULES = (
    'argparse', 'ast', 'asyncio', 'base64', 'bz2', 'calendar', 'cmd', 'code', 'codecs',
    'collections', 'concurrent.futures', 'configparser', 'csv', 'dataclasses', 'decimal',
    'difflib', 'doctest', 'email.message', 'email.utils', 'ftplib', 'hashlib', 'http.client',
    'http.server', 'imaplib', 'inspect', 'io', 'ipaddress', 'itertools', 'json', 'locale',
    'logging', 'lzma', 'mailbox', 'math', 'operator', 'optparse', 'os', 'pathlib', 'pdb',
    'pickletools', 'platform', 'pydoc', 'queue', 'random', 're', 'selectors', 'shelve', 'shutil',
    'smtplib', 'socket', 'sqlite3', 'ssl', 'statistics', 'subprocess', 'tarfile', 'tempfile',
    'textwrap', 'threading', 'time', 'timeit', 'tokenize', 'traceback', 'typing', 'unittest',
    'unittest.mock', 'urllib.parse', 'urllib.request', 'uuid', 'xml.etree.ElementTree', 'zipfile')
_SENTENCE_END = re.compile(r'(?<=[.!?])\s+')


def clean(rows: Sequence[tuple], settings: IngestionSettings) -> List[rules.Candidate]:
  """(text, label) rows cleaned and de-duplicated as ingestion does, in their order."""
  by_text = collections.defaultdict(list)
  for number, (text, label) in enumerate(rows, 1):
    record = rules.RawRecord('benchmark', number, 'train', text,
                             {settings.text_columns[0]: text, settings.label_column: label})
    candidate = rules.to_candidate(record, settings)
    if isinstance(candidate, rules.Candidate):
      by_text[candidate.text].append(candidate)
  kept = [r for text, copies in by_text.items() for r in rules.resolve_duplicates(text, copies)
          if isinstance(r, rules.Candidate)]
  return sorted(kept, key=lambda c: c.record_number)


def docstring_sentences() -> List[str]:
  """Distinct lower-cased sentences of 3-60 words from DOC_MODULES' docstrings, in a fixed
  order (doctest lines left out)."""
  docs = []
  for name in DOC_MODULES:
    module = importlib.import_module(name)
    docs.append(inspect.getdoc(module))
    for member_name, member in sorted(vars(module).items()):
      if member_name.startswith('_') or not (inspect.isclass(member) or inspect.isroutine(member)):
        continue
      docs.append(inspect.getdoc(member))
      if inspect.isclass(member):
        docs += [inspect.getdoc(method) for method_name, method in sorted(vars(member).items())
                 if not method_name.startswith('_') and inspect.isroutine(method)]
  sentences = {}
  for doc in filter(None, docs):
    for paragraph in doc.split('\n\n'):
      lines = [line.strip() for line in paragraph.splitlines()
               if not line.lstrip().startswith(('>>>', '...'))]
      for sentence in _SENTENCE_END.split(' '.join(lines)):
        sentence = sentence.strip().lower()
        if 3 <= len(sentence.split()) <= 60:
          sentences.setdefault(sentence)
  return list(sentences)


def spans_for_seed(sst2: List[rules.Candidate], domain: List[rules.Candidate], rows: int,
                   seed: int) -> Dict[str, tuple]:
  """case -> (span A, span B), each a list of Candidates."""
  rng = random.Random(seed)
  shuffled = rng.sample(sst2, len(sst2))
  span_a, rest = shuffled[:rows], shuffled[rows:]
  shifted_rows = round(SHIFTED_SHARE * rows)
  shifted = ([c for c in rest if c.label == SHIFTED_LABEL][:shifted_rows]
             + [c for c in rest if c.label != SHIFTED_LABEL][:rows - shifted_rows])
  # The other domain gets span A's labels, shuffled: the same shares, on unrelated texts.
  labels = rng.sample([c.label for c in span_a], rows)
  other = [c._replace(label=label)
           for c, label in zip(rng.sample(domain, rows), labels, strict=True)]
  return {'random re-split': (span_a, rest[:rows]), 'label shift': (span_a, shifted),
          'other domain': (span_a, other)}


def statistics(candidates: List[rules.Candidate], work_dir: str, name: str):
  """TFDV statistics of the candidates as a span run's examples, as StatisticsGen computes them."""
  data = os.path.join(work_dir, f'{name}.tfrecord.gz')
  with tf.io.TFRecordWriter(data, options='GZIP') as writer:
    for candidate in candidates:
      writer.write(to_example(candidate, with_profile=True))
  return tfdv.generate_statistics_from_tfrecord(
      data, output_path=os.path.join(work_dir, f'{name}.stats'))


def distances(new_stats, old_stats) -> Dict[str, float]:
  """feature -> measured distance, as DistributionValidator measures it (the schema built as in
  tfx/components/distribution_validator/executor.py `_make_schema_from_config`)."""
  config = drift_gate.distribution_validator_config(DriftSettings())
  schema = tfdv.infer_schema(old_stats)
  for compared in config.default_slice_config.feature:
    feature = schema_util.get_feature(schema, path.FeaturePath.from_proto(compared.path))
    feature.drift_comparator.CopyFrom(compared.distribution_comparator)
  anomalies = tfdv.validate_statistics(new_stats, schema, previous_statistics=old_stats)
  measured = {'.'.join(info.path.step): info.drift_measurements[0].value
              for info in anomalies.drift_skew_info}
  missing = set(drift_gate.MEASURES) - set(measured)
  if missing:
    raise SystemExit(f'TFDV measured no distance for {sorted(missing)}.')
  return measured


def suggest(measured: Dict[str, Dict[str, List[float]]]) -> List[str]:
  """Per distance: the lowest 2-significant-digit threshold >= MARGIN x the random re-splits'
  max, and which seeds of the drifted cases it flags."""
  lines, thresholds = [], {}
  for feature, (field, _, _) in drift_gate.MEASURES.items():
    floor = max(MARGIN * max(measured['random re-split'][feature]), 1e-4)
    step = 10.0 ** (math.floor(math.log10(floor)) - 1)  # 2 significant digits, rounded up
    threshold = thresholds[feature] = round(math.ceil(floor / step) * step, 10)
    flagged = {case: sum(v > threshold for v in measured[case][feature])
               for case in CASES[1:]}
    lines.append(f'  {field} ({feature}): {threshold:g}  (random re-split max x{MARGIN:g} = '
                 f'{floor:.4f}; flags label shift in {flagged["label shift"]}, other domain in '
                 f'{flagged["other domain"]} of {len(measured["label shift"][feature])} seeds)')
  label, word_count, words = drift_gate.MEASURES
  seeds = len(measured['label shift'][label])
  label_ok = all(v > thresholds[label] for v in measured['label shift'][label])
  domain_ok = all(c > thresholds[word_count] or w > thresholds[words] for c, w in zip(
      measured['other domain'][word_count], measured['other domain'][words], strict=True))
  lines.append(f'  label shift flagged on {label} in all {seeds} seeds: '
               f'{"yes" if label_ok else "NO"}; other domain flagged on {word_count} or {words} '
               f'in all seeds: {"yes" if domain_ok else "NO"}')
  if not (label_ok and domain_ok):
    lines.append(f'  No thresholds pass the random re-splits with a {MARGIN:g}x margin and flag '
                 'both drifted cases.')
  return lines


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data-root', default=IngestionSettings().data_root,
                      help='directory holding SST-2 train.tsv')
  parser.add_argument('--span-rows', type=int, default=8000, help='rows per span (N)')
  parser.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3])
  args = parser.parse_args()
  started = time.monotonic()
  settings = IngestionSettings(data_root=args.data_root)
  texts, labels = read_labelled_tsv(os.path.join(args.data_root, settings.train_pattern),
                                    settings.text_columns[0], settings.label_column)
  sst2 = clean(list(zip(texts, labels, strict=True)), settings)
  # Labelled later, per seed.
  domain = clean([(text, settings.label_names[0]) for text in docstring_sentences()], settings)
  if len(domain) < args.span_rows or 2 * args.span_rows > len(sst2):
    raise SystemExit(f'--span-rows {args.span_rows} is too many: {len(sst2)} SST-2 rows, '
                     f'{len(domain)} docstring sentences.')

  measured = {case: collections.defaultdict(list) for case in CASES}
  span_rows = {}  # case -> 'A rows/B rows'
  with tempfile.TemporaryDirectory() as work_dir:
    for seed in args.seeds:
      spans = spans_for_seed(sst2, domain, args.span_rows, seed)
      old_stats = statistics(spans['random re-split'][0], work_dir, f'{seed}_a')
      for number, (case, (span_a, span_b)) in enumerate(spans.items()):
        new_stats = statistics(span_b, work_dir, f'{seed}_b{number}')
        for feature, value in distances(new_stats, old_stats).items():
          measured[case][feature].append(value)
        span_rows[case] = f'{len(span_a)}/{len(span_b)}'
        print(f'seed {seed} {case}: done ({time.monotonic() - started:.0f} s)', file=sys.stderr,
              flush=True)

  print(f"Command: python -m benchmarks.drift_thresholds {' '.join(sys.argv[1:])}".rstrip())
  print(f'Pools: {len(sst2)} cleaned SST-2 rows, {len(domain)} docstring sentences; '
        f'seeds {args.seeds}.')
  features = list(drift_gate.MEASURES)
  header = f"{'case':<16} {'rows A/B':>10}" + ''.join(f' {f + " mean":>16} {f + " max":>15}'
                                                     for f in features)
  print(header)
  for case in CASES:
    values = measured[case]
    print(f'{case:<16} {span_rows[case]:>10}' + ''.join(
        f' {sum(values[f]) / len(values[f]):>16.4f} {max(values[f]):>15.4f}' for f in features))
  print('Suggested thresholds:')
  print('\n'.join(suggest(measured)))
  print(f'Elapsed: {time.monotonic() - started:.0f} s')


if __name__ == '__main__':
  main()
