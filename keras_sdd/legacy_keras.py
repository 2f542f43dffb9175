"""The Keras 2 pin: ``tf.keras`` resolves to ``tf_keras`` for the rest of the process (and its children).

Imported first by every module of keras_sdd that needs ``tf_keras`` or TensorFlow Model Optimization (models,
pruning's tfmot bridge, callbacks, distillation, study, apps); ``import keras_sdd`` alone and the Keras 3 path
(``keras_sdd.keras3``) never import it, so a Keras 3 user's ``tf.keras`` stays Keras 3.

TensorFlow picks the Keras behind ``tf.keras`` on its first attribute access, from ``TF_USE_LEGACY_KERAS``
(tfmot's own import sets the variable and then touches ``tf.keras``). Our tf_keras path builds every model with
``tf_keras`` directly, so it works even if ``tf.keras`` already is Keras 3; what needs ``tf.keras`` itself to
be Keras 2 (keras_cv's RandAugment) calls ``require()``, which says what to do when the pin came too late.
"""
from __future__ import annotations

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: What to do when ``tf.keras`` was resolved to Keras 3 before the pin.
FIX = ("import keras_sdd.legacy_keras (or set TF_USE_LEGACY_KERAS=1) before anything touches tf.keras or imports "
       "keras_cv, or use the Keras 3 path, keras_sdd.keras3")


def tf_keras_is() -> str:
    """What ``tf.keras`` is in this process, without resolving it: 'tf_keras', 'keras_3', or 'unresolved'
    (TensorFlow not imported, or ``tf.keras`` not touched yet: it will be tf_keras, the pin being set)."""
    tf = sys.modules.get("tensorflow")
    keras = None if tf is None else tf.__dict__.get("keras")
    if keras is None or not getattr(keras, "_tfll_initialized", True):
        return "unresolved"
    version = keras.__dict__.get("_tfll_keras_version")  # TensorFlow's lazy loader, once resolved
    if version is not None:
        return "keras_3" if version == "keras_3" else "tf_keras"
    # the loaded module replaces the loader in tensorflow, under its own name or as 'tensorflow.keras': its file
    # tells (tf_keras/api/_v2/keras/ for Keras 2, keras/_tf_keras/keras/ for Keras 3)
    parts = os.path.normpath(str(keras.__dict__.get("__file__", ""))).split(os.sep)
    return "tf_keras" if "tf_keras" in parts else "keras_3"


def require(purpose: str) -> None:
    """Raises RuntimeError naming the fix when ``tf.keras`` is already Keras 3 and ``purpose`` needs Keras 2."""
    if tf_keras_is() == "keras_3":
        raise RuntimeError(f"{purpose} needs tf.keras to be Keras 2 (tf_keras), but tf.keras was resolved to "
                           f"Keras 3 before keras_sdd could pin it: {FIX}")
