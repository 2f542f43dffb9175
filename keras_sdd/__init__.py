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

#: The public API, imported on first use so that ``import keras_sdd`` stays cheap and never pulls keras_cv.
_LAZY = {
    "data": ("keras_sdd.data", None), "models": ("keras_sdd.models", None),
    "pruning": ("keras_sdd.pruning", None), "callbacks": ("keras_sdd.callbacks", None),
    "StudyConfig": ("keras_sdd.config", "StudyConfig"), "run_study": ("keras_sdd.study.runner", "run_study"),
    "DistillationModel": ("keras_sdd.distillation", "DistillationModel"),
    "load_round": ("keras_sdd.study.loading", "load_round"), "load_best": ("keras_sdd.study.loading", "load_best"),
    "analysis": ("keras_sdd.analysis", None),
}

__all__ = ["ConfigError", "SDDError", "__version__", *_LAZY]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_sdd' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    return getattr(value, attr) if attr else value
