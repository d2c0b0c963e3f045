"""Latency and throughput of the pushed model on raw text, and the share spent tokenizing.

    python -m benchmarks.serving_latency [--model-dir DIR] [--requests 200]

Loads the SavedModel in this fresh process, as TF Serving does (default: the newest version under
<serving_model_dir>/<model_name>/), and sends the SST-2 validation sentences through
`serving_default` as raw-text requests of 1 and of 32 texts: p50/p95/p99 latency per request and
examples/s. Tokenization share: the `transform_features` signature (tf.Example parsing + the
Transform graph, i.e. the WordPiece tokenizer) timed against `serving_tf_example` (the same
parsing and Transform graph, then the Transformer) on the same serialized examples.
No server, network or serialization is in the loop.
"""

import argparse
import os
import time
from typing import List

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the TF Text ops the exported model uses)

from benchmarks.common import read_labelled_tsv
from components import atomic_pusher
from models import features
from models.latency import BATCH_SIZES, request_batches, seconds_per_call
from pipeline.config import PipelineConfig


def newest_version(config: PipelineConfig) -> str:
  versions = atomic_pusher.versions(config.push_destination)
  if not versions:
    raise SystemExit(f'No pushed model under {config.push_destination}: run `make run` first.')
  return os.path.join(config.push_destination, str(versions[-1]))


def serialized_examples(texts: List[str], labels: List[str]) -> List[bytes]:
  # transform_features parses the label too, so the examples carry it.
  return [tf.train.Example(features=tf.train.Features(feature={
      features.TEXT_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.encode()])),
      features.LABEL_KEY: tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[label.encode()])),
  })).SerializeToString() for t, label in zip(texts, labels, strict=True)]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--model-dir', help='a SavedModel; default: the newest pushed version')
  parser.add_argument('--requests', type=int, default=200, help='timed requests per batch size')
  args = parser.parse_args()
  config = PipelineConfig.from_env()
  model_dir = args.model_dir or newest_version(config)
  ingestion = config.ingestion
  texts, labels = read_labelled_tsv(os.path.join(ingestion.data_root, ingestion.eval_pattern),
                                    ingestion.text_columns[0], ingestion.label_column)
  examples = serialized_examples(texts, labels)

  started = time.perf_counter()
  signatures = tf.saved_model.load(model_dir).signatures
  print(f'Model: {model_dir} (loaded in {time.perf_counter() - started:.1f} s)')
  print(f'Texts: {len(texts)} validation sentences; {args.requests} timed requests per batch size; '
        f'{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}')
  # Each call fetches its outputs as numpy values, so the timing covers the whole computation.
  serve_text = signatures[features.SERVING_SIGNATURE]
  serve_examples = signatures[features.TF_EXAMPLE_SIGNATURE]
  transform = signatures[features.TRANSFORM_SIGNATURE]
  calls = {
      'text': lambda batch: serve_text(text=batch)[features.PROBABILITIES_KEY].numpy(),
      'examples': lambda batch: serve_examples(examples=batch)[features.PROBABILITIES_KEY].numpy(),
      'tokenize': lambda batch: transform(examples=batch)[features.TOKEN_IDS_KEY].numpy(),
  }
  print(f"{'batch':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'examples/s':>11} "
        f"{'tokenization share':>19}")
  for batch_size in BATCH_SIZES:
    seconds = seconds_per_call(calls['text'],
                               request_batches(texts, batch_size, args.requests))
    example_batches = request_batches(examples, batch_size, args.requests)
    full = seconds_per_call(calls['examples'], example_batches)
    tokenize = seconds_per_call(calls['tokenize'], example_batches)
    p50, p95, p99 = np.percentile(seconds, [50, 95, 99]) * 1000
    share = np.median(tokenize) / np.median(full)
    print(f'{batch_size:>5} {p50:>8.2f} {p95:>8.2f} {p99:>8.2f} '
          f'{batch_size * len(seconds) / seconds.sum():>11.0f} {share:>19.0%}', flush=True)


if __name__ == '__main__':
  main()
