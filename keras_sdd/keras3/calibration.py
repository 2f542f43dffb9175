"""CalibrationLogger (Keras 3): ECE and a reliability diagram of given validation data every N epochs."""
from __future__ import annotations

from typing import Optional

import numpy as np

from keras_sdd.analysis import calibration
from keras_sdd.keras3.callback import Callback
from keras_sdd.reliability_diagram import reliability_png


class CalibrationLogger(Callback):
    """Every ``every_n_epochs`` epochs (epochs N, 2N, ...): predicts ``validation_data = (x, y)`` (integer or
    one-hot labels), adds ``val_ece`` (``bins`` equal-width bins, ``keras_sdd.analysis.calibration``) to that
    epoch's logs and, with ``log_dir``, writes ``calibration/ece`` and the reliability diagram
    ``calibration/reliability`` to TensorBoard. Logits or probabilities (``from_logits=None`` tells them apart).
    ``last`` holds the latest ``Reliability``; reset at ``on_train_begin``."""

    def __init__(self, validation_data, log_dir=None, every_n_epochs: int = 1, bins: int = 15,
                 from_logits: Optional[bool] = None, batch_size: int = 256):
        super().__init__(log_dir)
        if int(every_n_epochs) < 1 or int(bins) < 1:
            raise ValueError("every_n_epochs and bins must be >= 1")
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise ValueError("validation_data must be (x, y)")
        self.x, self.y = validation_data[0], np.asarray(validation_data[1])
        self.every, self.bins = int(every_n_epochs), int(bins)
        self.from_logits, self.batch_size = from_logits, int(batch_size)
        self.last: Optional[calibration.Reliability] = None

    def on_train_begin(self, logs=None):
        self.last = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        out = self.model.predict(self.x, batch_size=self.batch_size, verbose=0)
        rel = calibration.reliability(np.asarray(out), self.y, self.bins, from_logits=self.from_logits)
        self.last = rel
        if logs is not None:
            logs["val_ece"] = rel.ece
        writer = self.writer()
        if writer is not None:
            import tensorflow as tf  # pylint: disable=import-outside-toplevel

            png = reliability_png(rel, f"epoch {epoch + 1}: ECE {rel.ece:.4f}")
            with writer.as_default():
                tf.summary.scalar("calibration/ece", rel.ece, step=epoch)
                tf.summary.image("calibration/reliability", tf.io.decode_png(png, channels=4)[tf.newaxis],
                                 step=epoch)
            writer.flush()
