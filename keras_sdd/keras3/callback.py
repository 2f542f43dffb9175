"""The base of keras_sdd's Keras 3 callbacks: refuses a tf_keras model in one line, and writes TensorBoard scalars.

TensorBoard files are written with ``tf.summary`` (imported only when a ``log_dir`` is given), as Keras 3's own
TensorBoard callback does on every backend.
"""
from __future__ import annotations

import os
from typing import Optional

import keras

from keras_sdd.keras_line import require_keras3_model


class Callback(keras.callbacks.Callback):
    """``keras.callbacks.Callback`` that checks it was given a Keras 3 model and owns an optional summary writer."""

    def __init__(self, log_dir=None):
        super().__init__()
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self._writer = None

    def set_model(self, model):
        require_keras3_model(model, type(self).__name__)
        super().set_model(model)

    def writer(self):
        """The ``tf.summary`` file writer of ``log_dir`` (opened on first use), or None without ``log_dir``."""
        if self.log_dir is None:
            return None
        if self._writer is None:
            import tensorflow as tf  # pylint: disable=import-outside-toplevel

            self._writer = tf.summary.create_file_writer(self.log_dir)
        return self._writer

    def write_scalars(self, scalars: dict, step: int) -> None:
        """Writes ``{tag: value}`` at ``step`` (nothing without ``log_dir``)."""
        writer = self.writer()
        if writer is None:
            return
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        with writer.as_default():
            for tag, value in scalars.items():
                tf.summary.scalar(tag, float(value), step=int(step))
        writer.flush()

    def close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def on_train_end(self, logs=None):
        self.close_writer()


def sync_state(model) -> None:
    """Makes the model's variables current mid-epoch (JAX keeps them in the train loop's state until the epoch
    ends); nothing on other backends."""
    if keras.backend.backend() == "jax" and hasattr(model, "jax_state_sync"):
        model.jax_state_sync()


def optional(value: Optional[int], name: str) -> Optional[int]:
    if value is not None and int(value) < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return None if value is None else int(value)
