"""IterativeMagnitudePruning (Keras 3): IMP inside one ``model.fit`` on a plain Keras 3 model.

At the start of each listed epoch it removes ``prune_fraction`` of the remaining weights with a pruning method of
``keras_sdd.pruning.PRUNING_METHODS`` (the numpy mask selection the tf_keras path uses: global magnitude, one
threshold over all kernels, by default; layer-wise magnitude; random) and puts the masks on the kernel variables'
constraints (``kernel_masks``), so the optimizer keeps pruned weights at exactly 0 inside the compiled step.
Same arguments as ``keras_sdd.callbacks.IterativeMagnitudePruning``, plus ``rewind``.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterable, Optional, Union

from absl import logging
from keras_sdd.errors import ConfigError
from keras_sdd.keras3 import kernel_masks as km
from keras_sdd.keras3.callback import Callback
from keras_sdd.keras3.optimizer_reset import reset_optimizer
from keras_sdd.keras3.rewind import RewindCapture, restore
from keras_sdd.pruning.masks import collapsed, sparsity
from keras_sdd.pruning.methods import PRUNING_METHODS, is_gradual
from keras_sdd.pruning.scope import PruneScope


class IterativeMagnitudePruning(Callback):
    """Prunes ``prune_fraction`` of the remaining weights at the start of each epoch in ``prune_epochs`` (0-based,
    as Keras counts; None: every epoch but the first), targets ``1 - (1 - f)^k`` over the kernels in ``scope``.

    ``method``: a between-round pruning-method name or a function ``(weights, masks, target, seed) -> masks``;
    ``seed`` (+ epoch) feeds random methods. ``restart_learning_rate``: the optimizer's iteration count and slots
    are zeroed after each pruning. ``rewind``: after each pruning the weights are set back to a stored snapshot
    (a ``RewindCapture`` that has captured, a ``rewind.snapshot`` list, or a function returning one) and masked
    (lottery-ticket rewinding). Kernels without masks get them from their exact zeros at ``on_train_begin`` (a
    loaded pruned model resumes where it was). ``history`` maps each epoch to the global sparsity it trained
    under. Under JAX the train function is rebuilt after each pruning. State is reset in ``on_train_begin``."""

    def __init__(self, prune_fraction: float = 0.2, prune_epochs: Optional[Iterable[int]] = None,
                 scope: PruneScope = PruneScope(), restart_learning_rate: bool = False, verbose: int = 1,
                 method: Union[str, Callable] = "global_magnitude", seed: int = 0,
                 rewind: Union[None, RewindCapture, list, Callable] = None):
        super().__init__()
        if not 0.0 < prune_fraction < 1.0:
            raise ConfigError(f"prune_fraction must be in (0, 1), got {prune_fraction!r}")
        if isinstance(method, str):
            if is_gradual(method):
                raise ConfigError(f"pruning method {method!r} prunes during training with tfmot schedules (Keras 2 "
                                  "only); IterativeMagnitudePruning needs a between-round method")
            self._fn = PRUNING_METHODS.get(method)
        elif callable(method):
            self._fn = method
        else:
            raise ConfigError(f"method must be a pruning-method name or a function, got {method!r}")
        self.method, self.seed = method, int(seed)
        self.prune_fraction = float(prune_fraction)
        self.prune_epochs = None if prune_epochs is None else frozenset(int(e) for e in prune_epochs)
        if self.prune_epochs is not None and any(e < 0 for e in self.prune_epochs):
            raise ConfigError(f"prune_epochs must be >= 0, got {sorted(self.prune_epochs)}")
        self.scope = scope
        self.restart_learning_rate = restart_learning_rate
        self.verbose = verbose
        self.rewind = rewind
        self.history: Dict[int, float] = {}
        self._nominal: Optional[float] = None
        self._kernels: Dict = {}

    def on_train_begin(self, logs=None):
        self.history = {}
        self._nominal = None
        self._kernels = km.prunable_kernels(self.model, self.scope, who="IterativeMagnitudePruning")
        if not self._kernels:
            raise ConfigError(f"IterativeMagnitudePruning: the model has no prunable kernels (Dense, EinsumDense, "
                              f"Conv) in scope {self.scope}")
        km.ensure_masks(self._kernels)
        km.refresh_train_function(self.model)  # a train function traced before the masks existed would skip them

    def _prunes_at(self, epoch: int) -> bool:
        return epoch >= 1 if self.prune_epochs is None else epoch in self.prune_epochs

    def _snapshot(self):
        rewind = self.rewind
        if isinstance(rewind, RewindCapture):
            if rewind.weights is None:
                raise ConfigError(f"IterativeMagnitudePruning: rewind's RewindCapture has not captured step "
                                  f"{rewind.step} yet (put it in the same fit, before the first pruning epoch)")
            return rewind.weights
        return rewind() if callable(rewind) else rewind

    def on_epoch_begin(self, epoch, logs=None):
        masks = km.get_masks(self._kernels)
        current, _ = sparsity(masks)
        if self._prunes_at(epoch):
            total = sum(m.size for m in masks.values())
            # Targets follow 1 - (1 - s0)(1 - f)^k from the nominal (unrounded) sparsity, so rounding to whole
            # weights does not accumulate over rounds; resync if the masks were changed from outside.
            if self._nominal is None or abs(self._nominal - current) * total > 1.0:
                self._nominal = current
            target = self._nominal + self.prune_fraction * (1.0 - self._nominal)
            self._nominal = target
            new = self._fn(km.get_weights(self._kernels), masks, target, self.seed + epoch)
            km.assign_masks(self._kernels, new)
            if self.rewind is not None:
                restore(self.model, self._snapshot())
            if self.restart_learning_rate and self.model.optimizer is not None:
                reset_optimizer(self.model.optimizer)
            km.refresh_train_function(self.model)
            after, _ = sparsity(new)
            if self.verbose:
                gone = collapsed(new)
                logging.info("epoch %d: IterativeMagnitudePruning: global sparsity %.4f -> %.4f%s", epoch + 1,
                             current, after, f" (collapsed: {', '.join(gone)})" if gone else "")
            current = after
        self.history[epoch] = current

