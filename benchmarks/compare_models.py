"""Exported models side by side with a bag-of-words baseline, in one run: accuracy on the eval
file, serving latency on raw text, size on disk.

    python -m benchmarks.compare_models [--model NAME=DIR ...] [--requests 200]

Each --model is a SavedModel exported by the Trainer (default: the newest pushed version). The
baseline is TF-IDF over word 1- and 2-grams + logistic regression (scikit-learn), trained on the
configured training file (its regularisation picked by 3-fold cross-validation there) and scored
on the same eval file: what a user gets in seconds without a pipeline. Latency: `serving_default`
on raw-text requests of 1 and 32 validation sentences in this process (see
benchmarks/serving_latency.py); the baseline's `predict` likewise.
"""

import argparse
import os
import time
from typing import List, Tuple

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.pipeline import make_pipeline

from benchmarks.common import eval_accuracy, read_labelled_tsv
from benchmarks.serving_latency import newest_version
from models import export
from models.latency import BATCH_SIZES, latencies, probabilities_call, serving_signature
from pipeline.config import PipelineConfig


def row(name: str, accuracy: float, latency: List[Tuple[float, float]], megabytes: float,
        note: str) -> str:
  timings = ' '.join(f'{p50:>7.2f} {p95:>7.2f}' for p50, p95 in latency)
  return f'{name:<24} {accuracy:>8.4f} {timings} {megabytes:>8.1f}  {note}'


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--model', action='append', default=[], metavar='NAME=DIR',
                      help='an exported model (repeatable); default: the newest pushed version')
  parser.add_argument('--requests', type=int, default=200, help='timed requests per batch size')
  args = parser.parse_args()
  config = PipelineConfig.from_env()
  models = dict(spec.split('=', 1) for spec in args.model) or {'pushed': newest_version(config)}
  ingestion = config.ingestion
  columns = (ingestion.text_columns[0], ingestion.label_column)
  train_texts, train_labels = read_labelled_tsv(
      os.path.join(ingestion.data_root, ingestion.train_pattern), *columns)
  texts, labels = read_labelled_tsv(
      os.path.join(ingestion.data_root, ingestion.eval_pattern), *columns)

  print(f'Eval: {len(texts)} texts; train: {len(train_texts)} texts; {args.requests} timed '
        f'requests per batch size; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}')
  header = ' '.join(f'{f"b{b} p50":>7} {f"b{b} p95":>7}' for b in BATCH_SIZES)
  print(f"{'model':<24} {'accuracy':>8} {header} {'MB':>8}  note (latencies in ms)")

  started = time.perf_counter()
  # The regularisation is chosen by cross-validation on the training file, never on the eval one.
  baseline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                           LogisticRegressionCV(Cs=[0.25, 1, 4, 16], cv=3, max_iter=1000))
  baseline.fit(train_texts, train_labels)
  fit_seconds = time.perf_counter() - started
  accuracy = float(np.mean(baseline.predict(texts) == np.array(labels)))
  print(row('tfidf_1-2gram_logreg', accuracy,
            latencies(lambda batch: baseline.predict([t.decode() for t in batch.numpy()]),
                      texts, args.requests),
            0.0, f'trained in {fit_seconds:.1f} s'), flush=True)

  for name, model_dir in models.items():
    serve = serving_signature(model_dir)
    print(row(name, eval_accuracy(serve, texts, labels, ingestion.label_names),
              latencies(probabilities_call(serve), texts, args.requests),
              export.megabytes_on_disk(model_dir), model_dir), flush=True)

if __name__ == '__main__':
  main()
