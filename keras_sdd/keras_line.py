"""Which Keras a model belongs to, and the one-line error when it is handed to the other path's code.

keras_sdd has two paths: tf_keras (Keras 2) + tfmot (``keras_sdd.callbacks``, ``keras_sdd.distillation``) and
Keras 3 (``keras_sdd.keras3``). Their models are different classes; code of one path given the other's model
says so and names the import to use instead. Imports nothing: it only looks at modules already loaded.
"""
from __future__ import annotations

import sys

from keras_sdd.errors import ConfigError

KERAS2_IMPORT = {"DistillationModel": "keras_sdd.distillation"}


def kind_of(model) -> str:
    """'tf_keras' (a Keras 2 model), 'keras3' (a Keras 3 model, from ``keras`` or a Keras 3 ``tf.keras``) or
    'other'."""
    tf_keras = sys.modules.get("tf_keras")
    if tf_keras is not None and isinstance(model, tf_keras.Model):
        return "tf_keras"
    keras = sys.modules.get("keras")
    if keras is not None and str(getattr(keras, "__version__", "")).startswith("3") and isinstance(model, keras.Model):
        return "keras3"
    return "other"


def require_keras2_model(model, who: str) -> None:
    """ConfigError unless ``model`` is a tf_keras model; a Keras 3 model is pointed to ``keras_sdd.keras3``."""
    kind = kind_of(model)
    if kind == "keras3":
        raise ConfigError(f"{who} here is the tf_keras (Keras 2) one, but the model is a Keras 3 model "
                          f"({type(model).__name__}); use `from keras_sdd.keras3 import {who}`")
    if kind != "tf_keras":
        raise ConfigError(f"{who} needs a tf_keras model, got {type(model).__module__}.{type(model).__name__}")


def require_keras3_model(model, who: str) -> None:
    """ConfigError unless ``model`` is a Keras 3 model; a tf_keras model is pointed to the tf_keras path."""
    kind = kind_of(model)
    if kind == "tf_keras":
        raise ConfigError(f"{who} here is the Keras 3 one, but the model is a tf_keras (Keras 2) model "
                          f"({type(model).__name__}); use `from {KERAS2_IMPORT.get(who, 'keras_sdd.callbacks')} "
                          f"import {who}`")
    if kind != "keras3":
        raise ConfigError(f"{who} needs a Keras 3 model (keras.Model), got "
                          f"{type(model).__module__}.{type(model).__name__}")
