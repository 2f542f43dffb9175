"""SparsityLogger: global and per-layer sparsity of the pruning masks, to TensorBoard and the epoch logs."""
from __future__ import annotations

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)

import os
from typing import Optional

import tensorflow as tf

from keras_sdd.callbacks.base import Callback
from keras_sdd.pruning.tfmot_bridge import PruneScope, sparsity_report


class SparsityLogger(Callback):
    """At each epoch end, writes scalars ``sparsity/global`` and ``sparsity/<layer>`` (step = epoch) to
    ``log_dir`` and adds ``'sparsity'`` (global) to the epoch logs, hence to ``History``.

    Sparsity is read from the masks of the model's ``PruneLowMagnitude`` wrappers (all, or those in ``scope``).
    """

    def __init__(self, log_dir, scope: Optional[PruneScope] = None):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.scope = scope
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        report = sparsity_report(self.model, self.scope)
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            tf.summary.scalar("sparsity/global", report.global_sparsity, step=epoch)
            for layer, value in report.per_layer.items():
                tf.summary.scalar(f"sparsity/{layer}", value, step=epoch)
        self._writer.flush()
        if logs is not None:
            logs["sparsity"] = report.global_sparsity

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
