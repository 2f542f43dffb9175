"""The four ways a pruned network is retrained between rounds, applied to one long-lived wrapped model.

- ``lr_rewind``: keep the surviving trained weights, restart the original training policy (the seeds' default).
- ``finetune``: keep the weights, train at a constant small learning rate.
- ``weight_rewind``: reset the surviving weights to their values at step k of the dense run (k=0: init) —
  the lottery-ticket procedure.
- ``scratch``: re-initialise the surviving weights (a fresh draw per round, from the study seed).
In every mode the optimizer state restarts and the masks are re-applied, so no pruned weight comes back.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional

import numpy as np
import tf_keras

from keras_sdd.models.params import unwrap, walk_layers
from keras_sdd.pruning import tfmot_bridge
from keras_sdd.training.policy import RoundSchedule, reset_optimizer

#: layer key (``walk_layers``) -> that layer's own weights (kernel, bias, BatchNorm statistics...), without tfmot's variables.
Snapshot = Dict[str, List[np.ndarray]]


def snapshot(model: tf_keras.Model) -> Snapshot:
    """A copy of every layer's own weights, keyed by ``walk_layers`` keys (unique, also for a teacher and a
    student of the same zoo); wrappers are looked through, so plain and wrapped models give the same snapshot."""
    snap: Snapshot = {}
    for key, layer in walk_layers(model):
        weights = unwrap(layer).get_weights()
        if weights:
            snap[key] = [np.array(w, copy=True) for w in weights]
    return snap


def restore(model: tf_keras.Model, snap: Snapshot) -> None:
    """Writes a snapshot back (by layer key) and re-applies the masks, so pruned weights stay zero."""
    for key, layer in walk_layers(model):
        if key in snap:
            unwrap(layer).set_weights(snap[key])
    tfmot_bridge.apply_masks(model)


class Retrainer:
    """Prepares the model, optimizer and schedule for the retraining of round k >= 1."""

    def __init__(self, mode: str, *, optimizer: tf_keras.optimizers.Optimizer, schedule: RoundSchedule,
                 finetune_lr: float = 1e-3, rewind: Optional[Snapshot] = None,
                 fresh_init: Optional[Callable[[int], Snapshot]] = None):
        if mode == "weight_rewind" and rewind is None:
            raise ValueError("weight_rewind needs the rewind snapshot of the dense run")
        if mode == "scratch" and fresh_init is None:
            raise ValueError("scratch needs a fresh-initialisation function")
        self.mode = mode
        self.optimizer = optimizer
        self.schedule = schedule
        self.finetune_lr = finetune_lr
        self.rewind = rewind
        self.fresh_init = fresh_init

    def before_round(self, model: tf_keras.Model, round_index: int) -> None:
        """Called after the round's masks are assigned, before its training starts."""
        if round_index > 0:
            if self.mode == "weight_rewind":
                restore(model, self.rewind)
            elif self.mode == "scratch":
                restore(model, self.fresh_init(round_index))
            reset_optimizer(self.optimizer)
        self.set_learning_rate(round_index)

    def set_learning_rate(self, round_index: int) -> None:
        """Selects the round's learning-rate policy (also when a round is resumed half-way)."""
        finetune = self.mode == "finetune" and round_index > 0
        self.schedule.override.assign(self.finetune_lr if finetune else -1.0)
