"""Packaging for keras_sdd (library) and apps (command-line programs, ``python -m apps.sdd``).

Install:  pip install -e .            (then: python -m apps.sdd --flagfile=configs/quickstart.flags)
Tests:    pip install -e ".[test]"    (then: python -m pytest)

The pins are the versions this project is tested with. tensorflow-model-optimization 0.8.1 works only with
Keras 2, i.e. ``tf-keras``; the tf_keras path (``keras_sdd.legacy_keras``) sets TF_USE_LEGACY_KERAS=1 so that
``tf.keras`` is Keras 2 too; ``keras_sdd.keras3`` works on Keras 3 (``import keras``) and leaves it alone.
"""
import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).resolve().parent
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "keras_sdd" / "__init__.py").read_text(), re.M).group(1)

INSTALL_REQUIRES = [
    "tensorflow==2.21.*",  # not tensorflow-cpu: the same wheel runs on CPU and uses a GPU where there is one
    "tf-keras==2.21.*",  # Keras 2, matching TensorFlow's minor version; the only Keras tfmot supports
    "tensorflow-model-optimization==0.8.1",
    "tensorflow-datasets==4.9.10",
    "importlib_resources",  # tensorflow-datasets 4.9.10 imports it without declaring it
    "keras-cv==0.9.0",
    "tensorboard>=2.21,<2.22",
    "absl-py>=1.2,<2",  # tensorflow-model-optimization 0.8.1 requires absl-py < 2
    "numpy",
    "scipy",
    "matplotlib",
    "codecarbon>=2.8,<4",  # energy and CO2 per round (OfflineEmissionsTracker: no network)
]

setup(
    name="keras_sdd",
    version=VERSION,
    description="Sparse double descent studies with tf_keras and TensorFlow Model Optimization",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").is_file() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["keras_sdd", "keras_sdd.*", "apps", "apps.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "sweep": ["ray==2.60.*"],  # apps.sweep: studies as Ray tasks, on one machine or a cluster
        "keras3": ["jax[cpu]"],  # keras_sdd.keras3 on the JAX backend (TensorFlow's is installed anyway)
        "jax": ["jax[cpu]"],
        "test": ["pytest", "ray==2.60.*", "jax[cpu]"],  # the Keras 3 tests run their JAX cases too
    },
    entry_points={"console_scripts": ["keras-sdd = apps.sdd:run", "keras-sdd-report = apps.report:run",
                                      "keras-sdd-sweep = apps.sweep:run"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
