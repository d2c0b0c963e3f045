"""TF Serving warm-up requests, written into every exported model.

TF Serving runs the requests in `<model>/assets.extra/tf_serving_warmup_requests` (a TFRecord
file of at most 1000 PredictionLog protos) when it loads a version, before serving it, so the
first real requests do not pay for lazy initialisation (tokenizer tables, kernels, batch shapes).
"""

import os
from typing import List, Sequence

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from models import features
from models.settings import DEFAULT_MODEL_NAME

WARMUP_FILE = os.path.join('assets.extra', 'tf_serving_warmup_requests')

# Short to long sentences like the ones the model serves.
WARMUP_TEXTS = (
    'a gripping , beautifully acted film .',
    'the plot is thin and the jokes fall flat .',
    "it 's not a masterpiece , but the cast is so likeable that two hours at the movies pass "
    'quickly , and you leave the theatre smiling at the small moments it gets right .',
)


def predict_request(texts: List[str], model_name: str,
                    signature: str = features.SERVING_SIGNATURE) -> predict_pb2.PredictRequest:
  """TF Serving's gRPC PredictRequest for a batch of raw texts."""
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature
  request.inputs[features.TEXT_KEY].CopyFrom(tf.make_tensor_proto(texts, dtype=tf.string))
  return request


def write_warmup_requests(export_dir: str, texts: Sequence[str] = WARMUP_TEXTS,
                          model_name: str = DEFAULT_MODEL_NAME) -> str:
  """Writes each text as a batch-1 Predict request, then all of them as one batch.

  Returns the path of the warm-up file.
  """
  texts = list(texts)
  path = os.path.join(export_dir, WARMUP_FILE)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.TFRecordWriter(path) as writer:
    for batch in [[text] for text in texts] + [texts]:
      log = prediction_log_pb2.PredictionLog(
          predict_log=prediction_log_pb2.PredictLog(request=predict_request(batch, model_name)))
      writer.write(log.SerializeToString())
  return path
