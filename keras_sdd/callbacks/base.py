"""The base of keras_sdd's tf_keras callbacks: a Keras 3 model is refused in one line naming keras_sdd.keras3."""
from __future__ import annotations

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)

import tf_keras

from keras_sdd.keras_line import require_keras2_model


class Callback(tf_keras.callbacks.Callback):
    """``tf_keras.callbacks.Callback`` that checks it was given a tf_keras model."""

    def set_model(self, model):
        require_keras2_model(model, type(self).__name__)
        super().set_model(model)
