"""Pruning: numpy mask selection (masks), the method registry (methods), tfmot schedules (schedules) and the
bridge that puts our masks on tfmot ``PruneLowMagnitude`` wrappers (tfmot_bridge)."""
import keras_sdd  # noqa: F401  (pins Keras 2 before TensorFlow loads)

from keras_sdd.pruning.masks import (collapsed, global_magnitude_masks, layerwise_magnitude_masks, random_masks,
                                     round_targets, sparsity)
from keras_sdd.pruning.methods import PRUNING_METHODS, is_gradual
from keras_sdd.pruning.schedules import FixedMaskSchedule, gradual_schedule
from keras_sdd.pruning.tfmot_bridge import (PruneScope, SparsityReport, apply_masks, assign_masks, get_masks,
                                            get_weights, prune, set_pruning_step, set_schedule, sparsity_report,
                                            strip, wrap, wrappers)

__all__ = [
    "round_targets", "global_magnitude_masks", "layerwise_magnitude_masks", "random_masks", "sparsity",
    "collapsed", "PRUNING_METHODS", "is_gradual", "FixedMaskSchedule", "gradual_schedule", "PruneScope",
    "SparsityReport", "wrap", "wrappers", "get_weights", "get_masks", "assign_masks", "apply_masks", "prune",
    "sparsity_report", "strip", "set_schedule", "set_pruning_step",
]
