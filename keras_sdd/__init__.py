"""keras_sdd: sparse double descent studies on tf_keras + tfmot.

Importing the package pins Keras 2 (``tf_keras``) for TensorFlow Model Optimization *before* TensorFlow is
imported by anything of ours. If the user already imported TensorFlow (or tfds, keras_cv, tfmot), the variable
still matters for ``tf.keras`` look-ups made later, and the package itself never relies on ``tf.keras``: every
model is built with ``tf_keras`` directly, which is what tfmot wraps.
"""
import os as _os

_os.environ["TF_USE_LEGACY_KERAS"] = "1"
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from keras_sdd.errors import ConfigError, SDDError  # noqa: E402  (after the environment is set)

__all__ = ["ConfigError", "SDDError", "__version__"]
