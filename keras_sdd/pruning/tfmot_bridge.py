"""Our masks on tfmot ``PruneLowMagnitude`` wrappers: wrap a model, read weights/masks, assign masks, report.

The stock wrapper, on every call, assigns ``weight *= mask`` before the forward pass, so the forward always
sees masked weights; the optimizer step that follows updates masked weights too (their gradient is not
zero), so stored weights are exactly sparse only after ``apply_masks``. Masks live in the wrappers' own
variables: assigning them changes no traced graph, so one wrapped, compiled model serves every IMP round
without retracing its train function. Weights and masks are keyed ``'<layer>/<weight>'`` (e.g.
``'dense_1/kernel'``), prefixed by ``'<submodel>/'`` inside nested models: the keys of
``keras_sdd.models.params.walk_layers``, the one layer walker.
"""
from __future__ import annotations

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

import numpy as np
import tf_keras
import tensorflow_model_optimization as tfmot
from absl import logging
from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry, pruning_wrapper
from tf_keras.src.layers.convolutional.base_conv import Conv

from keras_sdd.errors import ConfigError
from keras_sdd.models.params import unwrap, walk_layers
from keras_sdd.pruning.fixed_mask_wrapper import FixedMaskPruneLowMagnitude
from keras_sdd.pruning.methods import PRUNING_METHODS
from keras_sdd.pruning.schedules import FixedMaskSchedule
from keras_sdd.pruning.scope import OUTPUT_LAYER_NAME, PruneScope

PruneLowMagnitude = pruning_wrapper.PruneLowMagnitude


@dataclass
class SparsityReport:
    """Sparsity from the masks: global, per layer (``'<layer>'`` keys), counts, layers pruned to 100 %."""

    global_sparsity: float
    per_layer: Dict[str, float]
    pruned: int
    prunable: int
    collapsed: List[str] = field(default_factory=list)


# --- walking the model -------------------------------------------------------------------------------------


def inner_layer(layer):
    """The layer a wrapper holds (the layer itself when it is not wrapped)."""
    return unwrap(layer)


def _output_dense(model) -> Optional[tf_keras.layers.Layer]:
    dense = [unwrap(layer) for _, layer in walk_layers(model) if isinstance(unwrap(layer), tf_keras.layers.Dense)]
    named = [d for d in dense if d.name == OUTPUT_LAYER_NAME]
    return named[0] if named else (dense[-1] if dense else None)


def _in_scope(layer, scope: PruneScope, output) -> bool:
    layer = inner_layer(layer)
    kind_ok = isinstance(layer, tf_keras.layers.Dense) or (not scope.only_dense and isinstance(layer, Conv))
    return kind_ok and not (scope.keep_output_dense and layer is output)


def wrappers(model: tf_keras.Model, scope: Optional[PruneScope] = None) -> List[PruneLowMagnitude]:
    """The model's PruneLowMagnitude layers (nested models included), optionally only those in ``scope``."""
    return [w for _, w in _scoped_wrappers(model, scope)]


def _scoped_wrappers(model, scope):
    output = _output_dense(model) if scope is not None else None
    return [(key, layer) for key, layer in walk_layers(model)
            if isinstance(layer, PruneLowMagnitude) and (scope is None or _in_scope(layer, scope, output))]


def _entries(model, scope=None):
    """[(key, layer key, weight var, mask var)] for the pruned tensors, in model order."""
    out = []
    for layer_key, wrapper in _scoped_wrappers(model, scope):
        if not wrapper.built:
            raise ConfigError(f"pruning wrapper {wrapper.name} is not built; build the model first")
        for weight, mask, _ in wrapper.pruning_vars:
            short = weight.name.split(":")[0].split("/")[-1]
            out.append((f"{layer_key}/{short}", layer_key, weight, mask))
    keys = [e[0] for e in out]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"prunable weights have clashing keys: {keys}")
    return out


# --- wrapping ----------------------------------------------------------------------------------------------


def wrap(model: tf_keras.Model, scope: PruneScope = PruneScope(), schedule=None) -> tf_keras.Model:
    """A copy of ``model`` whose in-scope Dense/Conv layers are wrapped in tfmot PruneLowMagnitude wrappers
    (``FixedMaskPruneLowMagnitude``: under a fixed-mask schedule it only masks the weights at each step).

    The copy has its own layers (the input model is untouched) with the same weights, all-ones masks and
    every wrapper's ``pruning_step`` at 0, so no ``UpdatePruningStep`` callback is needed. ``schedule``
    defaults to ``FixedMaskSchedule()`` (masks change only via ``assign_masks``/``prune``). Not compiled.
    """
    if not isinstance(model, tf_keras.Model) or not (
            isinstance(model, tf_keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise ConfigError(f"only Sequential and functional tf_keras models can be wrapped, got {type(model)}")
    if not model.built:
        raise ConfigError("build the model (give it an input shape) before wrapping it")
    if any(isinstance(layer, PruneLowMagnitude) for _, layer in walk_layers(model)):
        raise ConfigError("the model already has pruning wrappers")
    schedule = FixedMaskSchedule() if schedule is None else schedule
    output = _output_dense(model)

    def clone(layer):
        if isinstance(layer, tf_keras.Model):
            return tf_keras.models.clone_model(layer, clone_function=clone)
        copy = layer.__class__.from_config(layer.get_config())
        if _in_scope(layer, scope, output) and prune_registry.PruneRegistry.supports(layer):
            return FixedMaskPruneLowMagnitude(copy, pruning_schedule=schedule, dtype=copy.dtype_policy)
        return copy

    wrapped = tf_keras.models.clone_model(model, clone_function=clone)
    originals = dict(walk_layers(model))
    for key, layer in walk_layers(wrapped):
        unwrap(layer).set_weights(originals[key].get_weights())
    set_pruning_step(wrapped, 0)
    return wrapped


def set_pruning_step(model: tf_keras.Model, step: int = 0, only_if_unset: bool = False) -> None:
    """Set every wrapper's step counter (tfmot starts it at -1 and asserts >= 1 after its first increment)."""
    pairs = [(w.pruning_step, step) for w in wrappers(model)
             if w.built and (not only_if_unset or int(w.pruning_step.numpy()) < 0)]
    if pairs:
        tf_keras.backend.batch_set_value(pairs)


def set_schedule(model: tf_keras.Model, schedule, scope: Optional[PruneScope] = None) -> int:
    """Give the wrappers ``schedule``; returns how many changed, and rebuilds the train function if any did.

    The wrapper holds its schedule twice (``pruning_schedule`` and ``pruning_obj._pruning_schedule``, the one
    actually called) and reads it while tracing, so a traced train function must be rebuilt to see it.
    """
    changed = 0
    for w in wrappers(model, scope):
        if w.pruning_schedule is not schedule or getattr(w.pruning_obj, "_pruning_schedule", None) is not schedule:
            w.pruning_schedule = schedule
            if w.pruning_obj is not None:
                w.pruning_obj._pruning_schedule = schedule  # pylint: disable=protected-access
            changed += 1
    if changed and getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)
    return changed


def strip(model: tf_keras.Model) -> tf_keras.Model:
    """The model without wrappers (tfmot ``strip_pruning``), after making its stored weights exactly sparse.

    The stripped model shares its layers (hence weights) with ``model``.
    """
    apply_masks(model)
    return tfmot.sparsity.keras.strip_pruning(model)


# --- weights and masks -------------------------------------------------------------------------------------


def get_weights(model: tf_keras.Model, scope: Optional[PruneScope] = None) -> Dict[str, np.ndarray]:
    """The prunable kernels' stored values, by key (masked entries may be non-zero mid-round)."""
    return {key: weight.numpy() for key, _, weight, _ in _entries(model, scope)}


def get_masks(model: tf_keras.Model, scope: Optional[PruneScope] = None) -> Dict[str, np.ndarray]:
    """The wrappers' masks (float 0/1), by key."""
    return {key: mask.numpy() for key, _, _, mask in _entries(model, scope)}


def assign_masks(model: tf_keras.Model, masks: Mapping[str, np.ndarray]) -> None:
    """Write ``masks`` into the wrappers' mask variables and zero the masked weights (weight *= mask).

    Only variables are assigned: nothing is traced anew. Keys not given keep their masks.
    """
    entries = {key: (weight, mask) for key, _, weight, mask in _entries(model)}
    unknown = sorted(set(masks) - set(entries))
    if unknown:
        raise ConfigError(f"unknown mask keys {unknown}; the model's are {sorted(entries)}")
    pairs = []
    for key, value in masks.items():
        weight, mask = entries[key]
        value = np.asarray(value)
        if value.shape != tuple(mask.shape):
            raise ConfigError(f"{key}: mask shape {value.shape} != {tuple(mask.shape)}")
        if not np.all((value == 0) | (value == 1)):
            raise ConfigError(f"{key}: a mask must hold only 0 and 1")
        value = value.astype(mask.dtype.as_numpy_dtype)
        pairs += [(mask, value), (weight, weight.numpy() * value.astype(weight.dtype.as_numpy_dtype))]
    if pairs:
        tf_keras.backend.batch_set_value(pairs)


def apply_masks(model: tf_keras.Model) -> None:
    """weight *= mask in every wrapper, so stored weights are exactly sparse (e.g. at the end of a round)."""
    pairs = [(weight, weight.numpy() * mask.numpy()) for _, _, weight, mask in _entries(model)]
    if pairs:
        tf_keras.backend.batch_set_value(pairs)


# --- pruning and reporting ---------------------------------------------------------------------------------


def sparsity_report(model: tf_keras.Model, scope: Optional[PruneScope] = None) -> SparsityReport:
    """Sparsity of the model's masks (all wrappers, or those in ``scope``)."""
    pruned = prunable = 0
    per_layer_counts: Dict[str, List[int]] = {}
    for _, layer_key, _, mask in _entries(model, scope):
        m = mask.numpy()
        zeros = int(m.size - np.count_nonzero(m))
        counts = per_layer_counts.setdefault(layer_key, [0, 0])
        counts[0] += zeros
        counts[1] += m.size
        pruned += zeros
        prunable += m.size
    per_layer = {k: (z / n if n else 0.0) for k, (z, n) in per_layer_counts.items()}
    return SparsityReport(
        global_sparsity=pruned / prunable if prunable else 0.0, per_layer=per_layer, pruned=pruned,
        prunable=prunable, collapsed=[k for k, (z, n) in per_layer_counts.items() if n and z == n])


def prune(model: tf_keras.Model, target_sparsity: float, method="global_magnitude", seed: int = 0,
          scope: Optional[PruneScope] = None) -> SparsityReport:
    """Compute new masks with ``method`` (a registered name, or a function ``(weights, masks, target, seed)``)
    up to ``target_sparsity`` and assign them; warns on layer collapse.

    ``scope`` restricts pruning to some wrappers (default: all); the others keep their masks.
    """
    fn = PRUNING_METHODS.get(method) if isinstance(method, str) else method
    if getattr(fn, "gradual", False):
        raise ConfigError(f"pruning method {method!r} prunes during training; it has no between-round masks")
    new_masks = fn(get_weights(model, scope), get_masks(model, scope), target_sparsity, seed)
    assign_masks(model, new_masks)
    report = sparsity_report(model, scope)
    for layer in report.collapsed:
        logging.warning("layer collapse: %s is pruned to 100 %% (global sparsity %.4f)", layer,
                        report.global_sparsity)
    return report


__all__ = [
    "PruneScope", "SparsityReport", "wrap", "wrappers", "get_weights", "get_masks", "assign_masks",
    "apply_masks", "prune", "sparsity_report", "strip", "set_schedule", "set_pruning_step", "OUTPUT_LAYER_NAME",
]
