"""CalibrationLogger: ECE and a reliability diagram of given validation data, to TensorBoard every N epochs.

Why: pruning moves a model from over- to under-confidence (Arora et al. 2023); watching ECE during training shows
when. Works in any ``model.fit``; needs nothing else of keras_sdd.
"""
from __future__ import annotations

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)

import os
from typing import Optional

import numpy as np
import tensorflow as tf

from keras_sdd.callbacks.base import Callback
from keras_sdd.analysis import calibration
from keras_sdd.reliability_diagram import reliability_png  # noqa: F401  (also importable from here)


class CalibrationLogger(Callback):
    """Every ``every_n_epochs`` epochs (epochs N, 2N, ...): predicts ``validation_data = (x, y)`` (integer or
    one-hot labels), writes the expected calibration error (``calibration/ece``, ``bins`` equal-width bins, see
    ``keras_sdd.analysis.calibration``) and a reliability diagram (``calibration/reliability``) to TensorBoard in
    ``log_dir``, and adds ``val_ece`` to that epoch's logs (hence to History). The model may output logits or
    probabilities (``from_logits=None`` tells them apart; say it to be sure). ``last`` holds the latest
    ``Reliability``. No global state; reset at ``on_train_begin``, so one instance serves several fits."""

    def __init__(self, validation_data, log_dir, every_n_epochs: int = 1, bins: int = 15,
                 from_logits: Optional[bool] = None, batch_size: int = 256):
        super().__init__()
        if int(every_n_epochs) < 1 or int(bins) < 1:
            raise ValueError("every_n_epochs and bins must be >= 1")
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise ValueError("validation_data must be (x, y)")
        self.x, self.y = validation_data[0], np.asarray(validation_data[1])
        self.log_dir, self.every, self.bins = os.fspath(log_dir), int(every_n_epochs), int(bins)
        self.from_logits, self.batch_size = from_logits, int(batch_size)
        self.last: Optional[calibration.Reliability] = None
        self._writer = None

    def on_train_begin(self, logs=None):
        self.last = None
        self._close()
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        out = self.model.predict(self.x, batch_size=self.batch_size, verbose=0)
        rel = calibration.reliability(out, self.y, self.bins, from_logits=self.from_logits)
        ece = rel.ece
        self.last = rel
        png = reliability_png(rel, f"epoch {epoch + 1}: ECE {ece:.4f}")
        with self._writer.as_default():
            tf.summary.scalar("calibration/ece", ece, step=epoch)
            tf.summary.image("calibration/reliability", tf.io.decode_png(png, channels=4)[tf.newaxis], step=epoch)
        self._writer.flush()
        if logs is not None:
            logs["val_ece"] = ece

    def on_train_end(self, logs=None):
        self._close()

    def _close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
