"""Pruning: numpy mask selection (masks), the method registry (methods), tfmot schedules (schedules) and the
bridge that puts our masks on tfmot ``PruneLowMagnitude`` wrappers (tfmot_bridge).

The numpy parts (masks, methods, scope) are imported here; the tfmot parts, which pin Keras 2 and load tfmot and
tf_keras, only on first use of one of their names, so ``keras_sdd.pruning.masks`` serves the Keras 3 path too.
"""
from keras_sdd.pruning.masks import (collapsed, global_magnitude_masks, layerwise_magnitude_masks, random_masks,
                                     round_targets, sparsity)
from keras_sdd.pruning.methods import PRUNING_METHODS, is_gradual
from keras_sdd.pruning.scope import PruneScope

_TFMOT = {
    "FixedMaskSchedule": "schedules", "gradual_schedule": "schedules",
    **{name: "tfmot_bridge" for name in ("SparsityReport", "apply_masks", "assign_masks", "get_masks",
                                         "get_weights", "prune", "set_pruning_step", "set_schedule",
                                         "sparsity_report", "strip", "wrap", "wrappers")},
}

__all__ = [
    "round_targets", "global_magnitude_masks", "layerwise_magnitude_masks", "random_masks", "sparsity",
    "collapsed", "PRUNING_METHODS", "is_gradual", "FixedMaskSchedule", "gradual_schedule", "PruneScope",
    "SparsityReport", "wrap", "wrappers", "get_weights", "get_masks", "assign_masks", "apply_masks", "prune",
    "sparsity_report", "strip", "set_schedule", "set_pruning_step",
]


def __getattr__(name):
    if name not in _TFMOT:
        raise AttributeError(f"module 'keras_sdd.pruning' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"keras_sdd.pruning.{_TFMOT[name]}"), name)
