"""SparsityLogger (Keras 3): global and per-kernel sparsity, read from the exact zeros of the prunable kernels."""
from __future__ import annotations

from typing import Optional

from keras_sdd.keras3.callback import Callback
from keras_sdd.keras3.kernel_masks import kernel_sparsity
from keras_sdd.pruning.scope import PruneScope


class SparsityLogger(Callback):
    """At each epoch end, writes ``sparsity/global`` and ``sparsity/<kernel path>`` (step = epoch) to ``log_dir``
    (None: no TensorBoard) and adds ``'sparsity'`` (global) to the epoch logs, hence to ``History``.

    Sparsity is read from the prunable kernels (all, or those in ``scope``): their masks where
    ``IterativeMagnitudePruning`` put some, else their exact zeros, so it reads any Keras 3 model (pruned here,
    loaded pruned, pruned by other code). A model with no prunable kernel is refused (ConfigError) instead of
    logged as 0 %."""

    def __init__(self, log_dir=None, scope: Optional[PruneScope] = None):
        super().__init__(log_dir)
        self.scope = scope

    def on_train_begin(self, logs=None):
        kernel_sparsity(self.model, self.scope)  # refuse an unreadable model before training, not after an epoch

    def on_epoch_end(self, epoch, logs=None):
        global_sparsity, per = kernel_sparsity(self.model, self.scope)
        self.write_scalars({"sparsity/global": global_sparsity, **{f"sparsity/{k}": v for k, v in per.items()}},
                           epoch)
        if logs is not None:
            logs["sparsity"] = global_sparsity
