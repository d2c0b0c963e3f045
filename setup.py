"""Installs the project (the pipeline image installs it too; see Dockerfile)."""

import setuptools

setuptools.setup(
    name='tfx-text-classifier',
    version='0.1.0',
    description='TFX pipeline: raw labelled text to a KerasNLP Transformer classifier for TF Serving.',
    python_requires='>=3.9,<3.12',
    packages=setuptools.find_packages(include=['pipeline', 'models', 'components', 'serving']),
    # Exact versions are pinned by requirements/constraints.txt; see the Makefile's install step.
    install_requires=[
        'tfx==1.16.0',
        'tensorflow-text==2.16.1',
        'keras-nlp==0.31.0',
    ],
    extras_require={
        'test': ['pytest'],
        # pipeline/kubeflow_v2_runner.py and pipeline/schedule.py: Vertex AI, Kubeflow Pipelines.
        'kubeflow': ['kfp>=2,<2.8', 'kfp-pipeline-spec'],
    },
)
