"""Installs the project; also what Beam/Dataflow workers install (`--setup_file ./setup.py`)."""

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
    extras_require={'test': ['pytest']},
)
