"""The registry of pruning methods, by name.

Between-round methods choose new masks from the weights: ``fn(weights, masks, target, seed) -> masks``
(``gradual`` is False). The 'tfmot_*' methods are gradual, in-round pruning done by tfmot's own wrapper
schedule during training (``gradual`` is True): they have no mask function; build their schedule with
``method.schedule(target, end_step=..., ...)`` and pass it to ``tfmot_bridge.wrap``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping

import numpy as np

from keras_sdd.errors import ConfigError
from keras_sdd.pruning import masks as _masks
from keras_sdd.registry import Registry

PRUNING_METHODS = Registry("pruning method")


@PRUNING_METHODS.register("global_magnitude")
def global_magnitude(weights: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray], target: float,
                     seed: int = 0) -> Dict[str, np.ndarray]:
    """Global magnitude pruning (one threshold over all tensors); ``seed`` is unused."""
    del seed
    return _masks.global_magnitude_masks(weights, masks, target)


@PRUNING_METHODS.register("layerwise_magnitude")
def layerwise_magnitude(weights: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray], target: float,
                        seed: int = 0) -> Dict[str, np.ndarray]:
    """Layer-wise magnitude pruning (each tensor to the target); ``seed`` is unused."""
    del seed
    return _masks.layerwise_magnitude_masks(weights, masks, target)


@PRUNING_METHODS.register("random")
def random_pruning(weights: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray], target: float,
           seed: int = 0) -> Dict[str, np.ndarray]:
    """Random pruning among survivors, global count exact, deterministic per seed."""
    return _masks.random_masks(weights, masks, target, seed)


for _fn in (global_magnitude, layerwise_magnitude, random_pruning):
    _fn.gradual = False


@dataclass(frozen=True)
class GradualMethod:
    """An in-round method: tfmot recomputes masks during training following a schedule of ``kind``."""

    name: str
    kind: str  # 'constant' | 'polynomial', see schedules.gradual_schedule
    gradual: bool = True

    def schedule(self, target_sparsity: float, **kwargs):
        """The tfmot schedule reaching ``target_sparsity``; kwargs as ``schedules.gradual_schedule``."""
        from keras_sdd.pruning.schedules import gradual_schedule  # TF import only when needed

        return gradual_schedule(self.kind, target_sparsity, **kwargs)

    def __call__(self, weights, masks, target, seed=0):
        raise ConfigError(f"pruning method {self.name!r} is gradual (tfmot prunes during training): wrap the "
                          "model with its schedule instead of computing masks between rounds")


PRUNING_METHODS.register("tfmot_constant")(GradualMethod("tfmot_constant", "constant"))
PRUNING_METHODS.register("tfmot_polynomial")(GradualMethod("tfmot_polynomial", "polynomial"))


def is_gradual(name: str) -> bool:
    """True for in-round (tfmot schedule) methods; ConfigError for unknown names."""
    return bool(getattr(PRUNING_METHODS.get(name), "gradual", False))
