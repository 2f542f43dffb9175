"""Pruning schedules for tfmot wrappers: a fixed-mask one for IMP, and checked gradual (in-round) ones.

tfmot's wrapper asks its schedule every training step whether to recompute the masks from the current
weights. For IMP the masks are chosen between rounds by us (``keras_sdd.pruning.masks``) and must never be
recomputed in between, hence ``FixedMaskSchedule``. ``gradual_schedule`` builds tfmot's own schedules while
refusing settings with which tfmot silently prunes nothing.
"""
from __future__ import annotations

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)

import tensorflow as tf
import tf_keras
import tensorflow_model_optimization as tfmot
from absl import logging

from keras_sdd.errors import ConfigError

_sched = tfmot.sparsity.keras


@tf_keras.utils.register_keras_serializable(package="keras_sdd")
class FixedMaskSchedule(_sched.PruningSchedule):
    """Never prune: the wrapper keeps whatever masks were assigned to it from outside."""

    def __call__(self, step):
        del step
        return tf.constant(False), tf.constant(0.0, dtype=tf.float32)

    def get_config(self):
        # Same layout as tfmot's schedules, so PruneLowMagnitude.get_config/from_config round-trip; the
        # registered name lets tf_keras find the class without a custom_object_scope.
        return {"class_name": tf_keras.utils.get_registered_name(FixedMaskSchedule), "config": {}}

    @classmethod
    def from_config(cls, config):
        del config  # nothing to configure
        return cls()


def gradual_schedule(kind: str, target_sparsity: float, *, initial_sparsity: float = 0.0, begin_step: int = 0,
                     end_step: int, frequency: int = 100):
    """tfmot ``ConstantSparsity`` ('constant') or ``PolynomialDecay`` ('polynomial'), validated.

    tfmot counts steps from 1 and prunes when ``(step - begin_step) % frequency == 0`` inside
    ``[begin_step, end_step]``; a frequency larger than ``end_step - begin_step`` therefore never prunes.
    """
    if kind not in ("constant", "polynomial"):
        raise ConfigError(f"unknown gradual schedule {kind!r}; valid choices: constant, polynomial")
    for name, value in (("target_sparsity", target_sparsity), ("initial_sparsity", initial_sparsity)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
    if begin_step < 0:
        raise ConfigError(f"begin_step must be >= 0, got {begin_step}")
    if end_step <= begin_step:
        raise ConfigError(f"end_step ({end_step}) must be greater than begin_step ({begin_step})")
    if frequency < 1:
        raise ConfigError(f"frequency must be >= 1, got {frequency}")
    steps = end_step - begin_step
    if frequency > steps:
        raise ConfigError(
            f"frequency {frequency} is larger than the {steps} steps between begin_step and end_step: "
            f"tfmot would never prune; use frequency <= {steps}")
    if kind == "constant":
        return _sched.ConstantSparsity(target_sparsity, begin_step, end_step=end_step, frequency=frequency)
    if initial_sparsity > target_sparsity:
        raise ConfigError(f"initial_sparsity {initial_sparsity} exceeds target_sparsity {target_sparsity}")
    if steps % frequency:
        last = begin_step + (steps // frequency) * frequency
        logging.warning("PolynomialDecay: end_step %d is not begin_step + a multiple of frequency %d; the last "
                        "mask update (step %d) stays below target sparsity %.4f", end_step, frequency, last,
                        target_sparsity)
    return _sched.PolynomialDecay(initial_sparsity, target_sparsity, begin_step, end_step, frequency=frequency)
