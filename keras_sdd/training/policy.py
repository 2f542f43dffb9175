"""The training policy of a round: optimizer, learning-rate schedule and ℓ2 penalty, built from a StudyConfig.

One optimizer and one schedule serve every round of a study. Between rounds they are *reset* (variables
zeroed, the step counter back to 0) rather than rebuilt, so the compiled train function is traced once for the
whole study. The schedule's ``override`` variable switches to a constant learning rate (fine-tuning) the same way.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import tensorflow as tf
import tf_keras

if TYPE_CHECKING:  # the callbacks use this module; they must not pull in the study config
    from keras_sdd.config import StudyConfig


class RoundSchedule(tf_keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate as a function of the optimizer step inside a round.

    ``multistep``: base · γ^(number of milestones passed); ``cosine``: base · ½(1 + cos(π·t/T)) over the round;
    ``constant``: base. Setting ``override`` to a non-negative value replaces the schedule by that constant
    without retracing (used by the ``finetune`` retraining mode).
    """

    def __init__(self, kind: str, base_lr: float, steps_per_epoch: int, epochs: int,
                 milestones: Sequence[int] = (), gamma: float = 0.1):
        super().__init__()
        self.kind = kind
        self.base_lr = float(base_lr)
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = int(epochs)
        self.milestones = tuple(int(m) for m in milestones)
        self.gamma = float(gamma)
        self.override = tf.Variable(-1.0, trainable=False, dtype=tf.float32, name="lr_override")

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        base = tf.constant(self.base_lr, tf.float32)
        if self.kind == "multistep" and self.milestones:
            bounds = tf.constant([m * self.steps_per_epoch for m in self.milestones], tf.float32)
            passed = tf.reduce_sum(tf.cast(step >= bounds, tf.float32))
            lr = base * tf.pow(tf.constant(self.gamma, tf.float32), passed)
        elif self.kind == "cosine":
            total = float(max(1, self.steps_per_epoch * self.epochs))
            lr = 0.5 * base * (1.0 + tf.cos(math.pi * tf.minimum(step / total, 1.0)))
        else:
            lr = base
        return tf.where(self.override >= 0.0, self.override, lr)

    def value_at(self, step: int) -> float:
        """The learning rate at ``step`` as a float (for logs and tests)."""
        return float(self(tf.constant(step)))

    def get_config(self):
        return dict(kind=self.kind, base_lr=self.base_lr, steps_per_epoch=self.steps_per_epoch,
                    epochs=self.epochs, milestones=list(self.milestones), gamma=self.gamma)


def make_schedule(config: "StudyConfig", steps_per_epoch: int) -> RoundSchedule:
    return RoundSchedule(config.lr_schedule, config.learning_rate, steps_per_epoch, config.epochs,
                         config.milestones, config.lr_gamma)


def make_optimizer(config: "StudyConfig", schedule: RoundSchedule) -> tf_keras.optimizers.Optimizer:
    """SGD with momentum, Adam or AdamW, driven by ``schedule``."""
    if config.optimizer == "sgd":
        return tf_keras.optimizers.SGD(schedule, momentum=config.momentum)
    if config.optimizer == "adam":
        return tf_keras.optimizers.Adam(schedule)
    return tf_keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)


def reset_optimizer(optimizer) -> None:
    """Restart the policy from step 0: zero ``optimizer.iterations`` (iteration-keyed learning-rate schedules
    restart) and its slot variables (momenta, second moments); hyper-parameters are left alone, also in legacy
    optimizers, which keep them among their variables. A mixed-precision LossScaleOptimizer keeps its loss scale:
    only the optimizer inside it restarts."""
    inner = getattr(optimizer, "inner_optimizer", None)
    if inner is not None:
        reset_optimizer(inner)
        return
    if isinstance(optimizer, tf_keras.optimizers.legacy.Optimizer):
        slots = [slot for per_var in optimizer._slots.values() for slot in per_var.values()]  # pylint: disable=protected-access
    else:
        keep = {id(optimizer.iterations), id(getattr(optimizer, "_learning_rate", None))}
        slots = [v for v in optimizer.variables if id(v) not in keep]
    optimizer.iterations.assign(0)
    for slot in slots:
        slot.assign(tf.zeros_like(slot))


def add_l2_penalty(model: tf_keras.Model, l2: float, kernels: Sequence[tf.Variable]) -> None:
    """Adds λ/2·Σ‖w‖² over ``kernels`` to the model's losses (the seeds' ℓ2; equals SGD weight decay λ).

    The penalty reads the kernels when the loss is computed, after the pruning wrappers have masked them, so
    pruned weights contribute nothing.
    """
    if not l2 or not kernels:
        return
    kernels = list(kernels)
    lam = float(l2)
    model.add_loss(lambda: 0.5 * lam * tf.add_n([tf.reduce_sum(tf.square(k)) for k in kernels]))
