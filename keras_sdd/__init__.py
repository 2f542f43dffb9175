"""keras_sdd: sparse double descent studies on tf_keras + tfmot, and IMP callbacks for Keras 3 (``keras3``).

``import keras_sdd`` changes nothing process-wide: ``tf.keras`` stays what it would be. The modules of the tf_keras
path (models, pruning's tfmot bridge, callbacks, distillation, study, apps) first import ``keras_sdd.legacy_keras``,
which pins Keras 2 (``TF_USE_LEGACY_KERAS=1``) for tfmot; ``keras_sdd.keras3`` and ``keras_sdd.pruning.masks``
never do.
"""
import os as _os

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
    "analysis": ("keras_sdd.analysis", None), "keras3": ("keras_sdd.keras3", None),
}

__all__ = ["ConfigError", "SDDError", "__version__", *_LAZY]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_sdd' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    return getattr(value, attr) if attr else value
