"""Parameter accounting that reads the same on a plain model and on its tfmot-wrapped copy.

``prunable_weights`` lists the kernels magnitude pruning acts on: every Dense and Conv kernel, the four
projection kernels of an attention layer, and whatever a custom ``PrunableLayer`` declares. ``count_params``
counts the model's own weights: tfmot's wrappers (or any ``tf_keras.layers.Wrapper``) are looked through, so
their mask, threshold and pruning-step variables are never counted. ``total`` is every weight of the
underlying layers, trainable or not (as Keras' ``count_params``; BatchNorm's moving mean/variance included).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List

import keras_sdd  # noqa: F401  (pins Keras 2 before TensorFlow loads)
import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras

_CONV = (tf_keras.layers.Conv1D, tf_keras.layers.Conv2D, tf_keras.layers.Conv3D)


@dataclass(frozen=True)
class ParamCount:
    """``prunable``: entries of the prunable kernels; ``total``: entries of all the model's own weights."""

    prunable: int
    total: int

    @property
    def prunable_fraction(self) -> float:
        return self.prunable / self.total if self.total else 0.0


def underlying_layers(model: tf_keras.Model) -> Iterator[tf_keras.layers.Layer]:
    """The model's layers in order, nested models flattened and wrappers (e.g. PruneLowMagnitude) unwrapped."""
    for layer in model.layers:
        while isinstance(layer, tf_keras.layers.Wrapper):
            layer = layer.layer
        if isinstance(layer, tf_keras.Model):
            yield from underlying_layers(layer)
        else:
            yield layer


def layer_prunable_weights(layer: tf_keras.layers.Layer) -> list:
    """The kernels of one (unwrapped) layer that are eligible for pruning."""
    if isinstance(layer, tfmot.sparsity.keras.PrunableLayer):
        return list(layer.get_prunable_weights())
    if isinstance(layer, (tf_keras.layers.Dense,) + _CONV):
        return [layer.kernel]
    if isinstance(layer, tf_keras.layers.MultiHeadAttention):
        return [layer._query_dense.kernel, layer._key_dense.kernel, layer._value_dense.kernel,
                layer._output_dense.kernel]
    return []


def _unique(variables) -> list:
    seen, out = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def prunable_weights(model: tf_keras.Model) -> List:
    """The kernel variables eligible for pruning, in layer order; the same variables for a plain model and its
    ``prune_low_magnitude`` copy (tfmot wraps the original layers)."""
    return _unique(w for layer in underlying_layers(model) for w in layer_prunable_weights(layer))


def _size(variable) -> int:
    return int(np.prod(variable.shape, dtype=np.int64))


def count_params(model: tf_keras.Model) -> ParamCount:
    """Prunable and total parameter counts of ``model``, plain or tfmot-wrapped."""
    weights = _unique(w for layer in underlying_layers(model) for w in layer.weights)
    return ParamCount(prunable=sum(_size(w) for w in prunable_weights(model)),
                      total=sum(_size(w) for w in weights))
