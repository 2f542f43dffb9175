"""CalibrationLogger: ECE and a reliability diagram of given validation data, to TensorBoard every N epochs."""
from __future__ import annotations

import keras_sdd  # noqa: F401  (pins Keras 2 before TensorFlow loads)

import os

import numpy as np
import tensorflow as tf
import tf_keras

from keras_sdd.analysis import calibration


class CalibrationLogger(tf_keras.callbacks.Callback):
    """Every ``every_n_epochs`` epochs: predicts ``validation_data = (x, y)`` (y: integer labels), writes the
    expected calibration error (``calibration/ece``, equal-width ``bins``) and a reliability diagram
    (``calibration/reliability``) to ``log_dir``, and adds ``val_ece`` to the epoch logs (hence History).
    The model must output logits (as every keras_sdd model does) or, with ``from_logits=False``, probabilities."""

    def __init__(self, validation_data, log_dir, every_n_epochs: int = 1, bins: int = 15, from_logits: bool = True,
                 batch_size: int = 256):
        super().__init__()
        if every_n_epochs < 1 or bins < 1:
            raise ValueError("every_n_epochs and bins must be >= 1")
        self.x, self.y = validation_data[0], np.asarray(validation_data[1]).reshape(-1)
        self.log_dir, self.every, self.bins = os.fspath(log_dir), int(every_n_epochs), int(bins)
        self.from_logits, self.batch_size = from_logits, batch_size
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        if self._writer is None:
            self.on_train_begin()
        out = self.model.predict(self.x, batch_size=self.batch_size, verbose=0)
        probs = calibration.softmax(out) if self.from_logits else np.asarray(out, np.float64)
        ece = calibration.ece(probs, self.y, self.bins)
        from keras_sdd.analysis.plots import reliability_diagrams

        png = reliability_diagrams({f"epoch {epoch + 1}: ECE {ece:.4f}": {"probs": probs, "labels": self.y}},
                                   self.bins)
        with self._writer.as_default():
            tf.summary.scalar("calibration/ece", ece, step=epoch)
            tf.summary.image("calibration/reliability", tf.expand_dims(tf.io.decode_png(png, channels=4), 0),
                             step=epoch)
        self._writer.flush()
        if logs is not None:
            logs["val_ece"] = ece

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
