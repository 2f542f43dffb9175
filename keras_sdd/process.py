"""Process-wide set-up, done once by an app before any study: the global seed, TensorFlow threads, determinism.

Everything else in the package takes its randomness from derived seeds (``keras_sdd.seeds``) and touches no
process state, so a library user calls this once (or not at all) and keeps control of their own process.
"""
from __future__ import annotations

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)

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


def warn_slow_options(config) -> None:
    """Options known to slow a run on this machine get a warning (never a refusal)."""
    if config.jit_compile or config.mixed_precision != "none":
        if not tf.config.list_physical_devices("GPU") and not tf.config.list_physical_devices("TPU"):
            if config.jit_compile:
                logging.warning("--jit_compile on a CPU: XLA often makes small CPU models slower, not faster")
            if config.mixed_precision != "none":
                logging.warning("--mixed_precision=%s on a CPU: most CPUs have no fast %s kernels; expect a "
                                "slower run", config.mixed_precision, config.mixed_precision)


_STRATEGIES = {}


def make_strategy(name: str):
    """The tf.distribute strategy of ``--strategy`` (made once per process; None for 'default').

    ``mirrored``: every local GPU, or every logical CPU device when there is no GPU (tests split the CPU in two);
    ``multi_worker``: MultiWorkerMirroredStrategy from ``TF_CONFIG``; ``tpu``: the TPU the cluster resolver finds.
    ``--batch_size`` is the global batch: each of N replicas computes batch_size / N examples per step."""
    if name == "default":
        return None
    if name not in _STRATEGIES:
        if name == "mirrored":
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
            _STRATEGIES[name] = tf.distribute.MirroredStrategy(devices=devices)
        elif name == "multi_worker":
            _STRATEGIES[name] = tf.distribute.MultiWorkerMirroredStrategy()
        elif name == "tpu":
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            _STRATEGIES[name] = tf.distribute.TPUStrategy(resolver)
        else:
            raise ValueError(f"unknown strategy {name!r}")
    return _STRATEGIES[name]


def is_chief(strategy) -> bool:
    """Whether this process writes the study (the chief of a multi-worker cluster; always true otherwise)."""
    resolver = getattr(strategy, "cluster_resolver", None) if strategy is not None else None
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    kind, index = resolver.task_type, resolver.task_id
    return kind in (None, "chief") or (kind == "worker" and index == 0
                                       and "chief" not in resolver.cluster_spec().as_dict())
