"""TrainingCostLogger: training FLOPs so far, sparsity-aware, to TensorBoard and the epoch logs."""
from __future__ import annotations

import keras_sdd  # noqa: F401  (pins Keras 2 before TensorFlow loads)

import os

import tensorflow as tf
import tf_keras

from keras_sdd.analysis import flops


class TrainingCostLogger(tf_keras.callbacks.Callback):
    """At each epoch end: the epoch's training FLOPs, 3 × the forward FLOPs at the current mask densities ×
    ``examples_per_epoch`` (the training examples one epoch sees; Keras does not tell a callback), and the
    running total since ``fit`` began, as ``logs['train_flops']`` / ``logs['train_flops_cum']`` and, with
    ``log_dir``, as TensorBoard scalars ``cost/train_flops`` and ``cost/train_flops_cum``. Masks are read every
    epoch, so pruning during training is counted at the density each epoch ended with."""

    def __init__(self, examples_per_epoch: int, log_dir=None):
        super().__init__()
        if int(examples_per_epoch) < 1:
            raise ValueError(f"examples_per_epoch must be >= 1, got {examples_per_epoch}")
        self.examples_per_epoch = int(examples_per_epoch)
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.total = 0.0
        self._writer = None

    def on_train_begin(self, logs=None):
        self.total = 0.0
        self._writer = tf.summary.create_file_writer(self.log_dir) if self.log_dir else None

    def on_epoch_end(self, epoch, logs=None):
        epoch_flops = 3.0 * flops.inference_flops(self.model) * self.examples_per_epoch
        self.total += epoch_flops
        if logs is not None:
            logs["train_flops"], logs["train_flops_cum"] = epoch_flops, self.total
        if self._writer is not None:
            with self._writer.as_default():
                tf.summary.scalar("cost/train_flops", epoch_flops, step=epoch)
                tf.summary.scalar("cost/train_flops_cum", self.total, step=epoch)
            self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
