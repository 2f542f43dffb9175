"""EpochScalars: every epoch's logs (and the learning rate) as TensorBoard scalars."""
from __future__ import annotations

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)

import os
from typing import Any, Optional

import tensorflow as tf
import tf_keras


class EpochScalars(tf_keras.callbacks.Callback):
    """Writes ``epoch/<name>`` for each entry of the epoch logs (step = epoch) to ``log_dir``, plus ``epoch/lr``
    when a learning-rate ``schedule`` (a callable of the optimizer step) is given."""

    def __init__(self, log_dir, schedule: Optional[Any] = None):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.schedule = schedule
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        if self._writer is None:
            self.on_train_begin()
        with self._writer.as_default():
            for name, value in (logs or {}).items():
                tf.summary.scalar(f"epoch/{name}", float(value), step=epoch)
            if self.schedule is not None:
                tf.summary.scalar("epoch/lr", float(self.schedule(self.model.optimizer.iterations)), step=epoch)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
