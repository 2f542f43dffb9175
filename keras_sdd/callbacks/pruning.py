"""IterativeMagnitudePruning: IMP inside one ``model.fit`` on a user's ``prune_low_magnitude``-wrapped model.

At the start of each listed epoch it removes ``prune_fraction`` of the remaining weights with the given pruning
method (global magnitude by default; any name of ``keras_sdd.pruning.PRUNING_METHODS`` that computes masks
between rounds, or such a function). The wrappers' own tfmot schedules are replaced by ``FixedMaskSchedule``: otherwise tfmot would
recompute masks on its own (e.g. ``ConstantSparsity(0.0, 0)`` resets them to all ones at step 100, reviving
every pruned weight). The replacement is permanent (the originals are kept in ``original_schedules``), so
later training keeps the masks.
"""
from __future__ import annotations

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)

from typing import Callable, Dict, Iterable, Optional, Union

from tf_keras.src.utils.io_utils import print_msg  # Keras' own printing (absl logging when Keras is told to)

from keras_sdd.callbacks.base import Callback
from keras_sdd.errors import ConfigError
from keras_sdd.pruning.methods import is_gradual
from keras_sdd.training.policy import reset_optimizer
from keras_sdd.pruning.schedules import FixedMaskSchedule
from keras_sdd.pruning.tfmot_bridge import (PruneScope, apply_masks, prune, set_pruning_step, set_schedule,
                                            sparsity_report, wrappers)


class IterativeMagnitudePruning(Callback):
    """Global magnitude pruning of ``prune_fraction`` of the remaining weights at the start of each epoch in
    ``prune_epochs`` (0-based, as Keras counts; None: every epoch but the first).

    Works on any model holding tfmot ``PruneLowMagnitude`` wrappers, with or without tfmot's
    ``UpdatePruningStep``. ``scope`` limits which wrapped layers are pruned. With ``restart_learning_rate``
    the optimizer's iteration count and slots are zeroed after each pruning. ``history`` maps each epoch to
    the global sparsity it trained under. ``method``: a pruning-method name or a function
    ``(weights, masks, target, seed) -> masks``; ``seed`` feeds random methods. State is reset in
    ``on_train_begin``, so one instance can serve several ``fit`` calls. With ``verbose`` each pruning
    prints one line through Keras' own ``print_msg`` (standard output in a plain script).
    """

    def __init__(self, prune_fraction: float = 0.2, prune_epochs: Optional[Iterable[int]] = None,
                 scope: PruneScope = PruneScope(), restart_learning_rate: bool = False, verbose: int = 1,
                 method: Union[str, Callable] = "global_magnitude", seed: int = 0):
        super().__init__()
        if not 0.0 < prune_fraction < 1.0:
            raise ConfigError(f"prune_fraction must be in (0, 1), got {prune_fraction!r}")
        if isinstance(method, str):
            if is_gradual(method):
                raise ConfigError(f"pruning method {method!r} prunes during training (tfmot schedule); "
                                  "IterativeMagnitudePruning needs a between-round method")
        elif not callable(method):
            raise ConfigError(f"method must be a pruning-method name or a function, got {method!r}")
        self.method, self.seed = method, int(seed)
        self.prune_fraction = float(prune_fraction)
        self.prune_epochs = None if prune_epochs is None else frozenset(int(e) for e in prune_epochs)
        if self.prune_epochs is not None and any(e < 0 for e in self.prune_epochs):
            raise ConfigError(f"prune_epochs must be >= 0, got {sorted(self.prune_epochs)}")
        self.scope = scope
        self.restart_learning_rate = restart_learning_rate
        self.verbose = verbose
        self.history: Dict[int, float] = {}
        self.original_schedules: Dict[str, object] = {}
        self._nominal: Optional[float] = None

    def on_train_begin(self, logs=None):
        self.history = {}
        self._nominal = None
        all_wrappers = wrappers(self.model)
        if not wrappers(self.model, self.scope):
            raise ConfigError("IterativeMagnitudePruning needs a model with tfmot prune_low_magnitude wrappers "
                              f"on layers in scope {self.scope}")
        if any(not isinstance(w.pruning_schedule, FixedMaskSchedule) for w in all_wrappers):
            for w in all_wrappers:
                self.original_schedules.setdefault(w.name, w.pruning_schedule)
            set_schedule(self.model, FixedMaskSchedule())  # also rebuilds a traced train function
        set_pruning_step(self.model, 0, only_if_unset=True)

    def _prunes_at(self, epoch: int) -> bool:
        return epoch >= 1 if self.prune_epochs is None else epoch in self.prune_epochs

    def on_epoch_begin(self, epoch, logs=None):
        if self._prunes_at(epoch):
            before = sparsity_report(self.model, self.scope)
            current = before.global_sparsity
            # Targets follow 1 - (1 - s0)(1 - f)^k from the nominal (unrounded) sparsity, so rounding to whole
            # weights does not accumulate over rounds; resync if the masks were changed from outside.
            if self._nominal is None or abs(self._nominal - current) * before.prunable > 1.0:
                self._nominal = current
            target = self._nominal + self.prune_fraction * (1.0 - self._nominal)
            self._nominal = target
            report = prune(self.model, target, self.method, seed=self.seed + epoch, scope=self.scope)
            if self.restart_learning_rate and self.model.optimizer is not None:
                reset_optimizer(self.model.optimizer)
            if self.verbose:
                collapsed = f" (collapsed: {', '.join(report.collapsed)})" if report.collapsed else ""
                print_msg(f"epoch {epoch + 1}: IterativeMagnitudePruning: global sparsity {current:.4f} -> "
                          f"{report.global_sparsity:.4f}{collapsed}")
        self.history[epoch] = sparsity_report(self.model, self.scope).global_sparsity

    def on_epoch_end(self, epoch, logs=None):
        apply_masks(self.model)  # the last optimizer step of the epoch moved masked weights off zero
