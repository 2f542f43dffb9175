"""The study's training policy in Keras 3: the round's learning-rate schedule and the optimizer.

The same rules as ``keras_sdd.training.policy`` (multistep: base·γ^(milestones passed), milestones in epochs;
cosine: base·½(1 + cos(π·t/T)) over the round; constant), keyed by the optimizer's step, so zeroing the optimizer
(``keras_sdd.keras3.optimizer_reset``) restarts the policy: ``--retrain=lr_rewind``.
"""
from __future__ import annotations

import math
from typing import Sequence

import keras
from keras import ops


class RoundSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate as a function of the optimizer step inside a round (see the module docstring)."""

    def __init__(self, kind: str, base_lr: float, steps_per_epoch: int, epochs: int,
                 milestones: Sequence[int] = (), gamma: float = 0.1):
        self.kind, self.base_lr, self.gamma = kind, float(base_lr), float(gamma)
        self.steps_per_epoch, self.epochs = int(steps_per_epoch), int(epochs)
        self.milestones = tuple(int(m) for m in milestones)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        if self.kind == "multistep" and self.milestones:
            passed = sum(ops.cast(step >= float(m * self.steps_per_epoch), "float32") for m in self.milestones)
            return self.base_lr * ops.power(self.gamma, passed)
        if self.kind == "cosine":
            total = float(max(1, self.steps_per_epoch * self.epochs))
            return 0.5 * self.base_lr * (1.0 + ops.cos(math.pi * ops.minimum(step / total, 1.0)))
        return ops.cast(self.base_lr, "float32") + 0.0 * step

    def get_config(self):
        return dict(kind=self.kind, base_lr=self.base_lr, steps_per_epoch=self.steps_per_epoch, epochs=self.epochs,
                    milestones=list(self.milestones), gamma=self.gamma)


def make_schedule(config, steps_per_epoch: int) -> RoundSchedule:
    return RoundSchedule(config.lr_schedule, config.learning_rate, steps_per_epoch, config.epochs,
                         config.milestones, config.lr_gamma)


def make_optimizer(config, schedule: RoundSchedule) -> keras.optimizers.Optimizer:
    """SGD with momentum, Adam or AdamW (decoupled ``weight_decay``), driven by ``schedule``."""
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=config.momentum)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(schedule)
    return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
