"""Serving latency of an exported model on raw-text requests, timed in this process as TF
Serving would run its `serving_default` (no server, network or serialization in the loop).

The run summary times the run's models with it; the benchmarks too.
"""

import time
from typing import Callable, List, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the TF Text ops the exported model uses)

from models import features

BATCH_SIZES = (1, 32)
WARMUP_CALLS = 5  # untimed calls first: the first ones build kernels and tables


def serving_signature(model_dir: str):
  return tf.saved_model.load(model_dir).signatures[features.SERVING_SIGNATURE]


def probabilities_call(serve) -> Callable[[tf.Tensor], np.ndarray]:
  """`serving_default` on a batch of texts -> probabilities, fetched as numpy so that a timing
  covers the whole computation."""
  return lambda batch: serve(text=batch)[features.PROBABILITIES_KEY].numpy()


def request_batches(items: list, batch_size: int, count: int) -> List[tf.Tensor]:
  """`count` batches of consecutive items, wrapping around."""
  return [tf.constant([items[(i * batch_size + j) % len(items)] for j in range(batch_size)])
          for i in range(count)]


def seconds_per_call(call: Callable[[tf.Tensor], object], batches: List[tf.Tensor]) -> np.ndarray:
  for batch in batches[:WARMUP_CALLS]:
    call(batch)
  seconds = []
  for batch in batches:
    started = time.perf_counter()
    call(batch)
    seconds.append(time.perf_counter() - started)
  return np.array(seconds)


def latencies(call: Callable[[tf.Tensor], np.ndarray], texts: List[str], requests: int,
              batch_sizes: Sequence[int] = BATCH_SIZES) -> List[Tuple[float, float]]:
  """(p50, p95) milliseconds per request of `requests` texts, for each of `batch_sizes`."""
  result = []
  for batch_size in batch_sizes:
    seconds = seconds_per_call(call, request_batches(texts, batch_size, requests))
    result.append(tuple(np.percentile(seconds, [50, 95]) * 1000))
  return result


def batch1_p50_ms(serve, texts: List[str], requests: int = 100) -> float:
  """The median milliseconds of one raw text through `serve`, an exported model's
  `serving_default`."""
  (p50, _), = latencies(probabilities_call(serve), texts, requests, batch_sizes=(1,))
  return float(p50)


def probabilities_of(serve, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
  """[texts, classes]: `serve`'s probabilities for every text, in batches."""
  call = probabilities_call(serve)
  return np.concatenate([call(tf.constant(list(texts[start:start + batch_size])))
                         for start in range(0, len(texts), batch_size)])
