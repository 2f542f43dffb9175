"""Process-wide set-up, done once by an app before any study: the global seed, TensorFlow threads, determinism.

Everything else in the package takes its randomness from derived seeds (``keras_sdd.seeds``) and touches no
process state, so a library user calls this once (or not at all) and keeps control of their own process.
"""
from __future__ import annotations

import keras_sdd  # noqa: F401  (pins Keras 2 before TensorFlow loads)

import tensorflow as tf
import tf_keras
from absl import logging


def set_threads(n: int) -> None:
    """TensorFlow's intra- and inter-op pools (0: TensorFlow's default). They are fixed once its runtime starts:
    a later call that would change them is ignored with a warning instead of failing."""
    if not n:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:
        if tf.config.threading.get_intra_op_parallelism_threads() != n:
            logging.warning("--threads=%d ignored: TensorFlow's runtime had already started in this process", n)


def setup(seed: int, threads: int = 0, deterministic: bool = False) -> None:
    """Seeds Python, numpy and TensorFlow's global generators (for ops that take no seed, e.g. dropout), sets
    the thread pools and, optionally, TensorFlow op determinism."""
    set_threads(threads)
    tf_keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def setup_for(config) -> None:
    """``setup`` from a StudyConfig."""
    setup(config.seed, config.threads, config.deterministic)
