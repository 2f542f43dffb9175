"""Parameter accounting that reads the same on a plain model and on its tfmot-wrapped copy.

``prunable_weights`` lists the kernels magnitude pruning acts on: every Dense and Conv kernel, the four
projection kernels of an attention layer, and whatever a custom ``PrunableLayer`` declares. ``count_params``
counts the model's own weights: tfmot's wrappers (or any ``tf_keras.layers.Wrapper``) are looked through, so
their mask, threshold and pruning-step variables are never counted. ``total`` is every weight of the
underlying layers, trainable or not (as Keras' ``count_params``; BatchNorm's moving mean/variance included).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Tuple

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)
import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras

from keras_sdd.errors import SDDError

_CONV = (tf_keras.layers.Conv1D, tf_keras.layers.Conv2D, tf_keras.layers.Conv3D)


@dataclass(frozen=True)
class ParamCount:
    """``prunable``: entries of the prunable kernels; ``total``: entries of all the model's own weights."""

    prunable: int
    total: int

    @property
    def prunable_fraction(self) -> float:
        return self.prunable / self.total if self.total else 0.0


def unwrap(layer: tf_keras.layers.Layer) -> tf_keras.layers.Layer:
    """The layer inside any wrappers (tfmot's PruneLowMagnitude is a ``tf_keras.layers.Wrapper``)."""
    while isinstance(layer, tf_keras.layers.Wrapper):
        layer = layer.layer
    return layer


def walk_layers(model: tf_keras.Model, prefix: str = "") -> Iterator[Tuple[str, tf_keras.layers.Layer]]:
    """The one layer walker: ``(key, layer)`` for every non-model layer, in order, nested models flattened.

    ``layer`` is the layer as it sits in the model (possibly a pruning wrapper: ``unwrap`` it for its own
    weights). ``key`` is unique within the walk: the inner layer's name, prefixed by ``'<submodel>/'`` inside
    nested models; a nested model whose name a sibling already used (a teacher and a student built from the
    same zoo are both ``fcn``) is keyed ``'<name>#2'``, ``'#3'``... in order, so keys never collide. Plain and
    wrapped copies of one model give the same keys. Pruning, snapshots and counts all key by it.
    """
    seen: Dict[str, int] = {}
    keys = set()
    for layer in model.layers:
        inner = unwrap(layer)
        if isinstance(inner, tf_keras.Model):
            n = seen[inner.name] = seen.get(inner.name, 0) + 1
            yield from walk_layers(inner, f"{prefix}{inner.name}{'' if n == 1 else f'#{n}'}/")
            continue
        key = prefix + inner.name
        if key in keys:  # Keras keeps layer names unique within a model; a hand-assembled one may not
            raise SDDError(f"two layers of {model.name} are both called {key!r}; give them distinct names")
        keys.add(key)
        yield key, layer


def underlying_layers(model: tf_keras.Model) -> Iterator[tf_keras.layers.Layer]:
    """The model's own layers in order (``walk_layers``, wrappers unwrapped)."""
    for _, layer in walk_layers(model):
        yield unwrap(layer)


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


def count_nonzero(model: tf_keras.Model) -> int:
    """Non-zero entries of *all* the model's own weights, biases and normalisation included (wrappers' masks and
    counters not counted). Not seed 2's count: see ``count_nonzero_weights``."""
    weights = _unique(w for layer in underlying_layers(model) for w in layer.weights)
    return int(sum(np.count_nonzero(w.numpy()) for w in weights))


def count_nonzero_weights(model: tf_keras.Model) -> int:
    """Non-zero entries of the model's kernels (``prunable_weights``: Dense, Conv and attention projection
    kernels, the output layer's included; biases, normalisation, embeddings and tokens excluded), read after the
    masks are applied. This is seed 2's *effective number of parameters* of a round (Definition 2, "non-zero
    weights"): its Table 1 "Full" counts are exactly the kernels of 784→w→100→10."""
    return int(sum(np.count_nonzero(w.numpy()) for w in prunable_weights(model)))


def layer_densities_from_zeros(model: tf_keras.Model) -> Dict[str, float]:
    """{layer key: share of non-zero kernel entries} for every layer with prunable kernels, read from the weights
    themselves: the densities of a pruned model whose masks are gone (a stripped teacher, a saved file)."""
    out: Dict[str, float] = {}
    for key, layer in walk_layers(model):
        kernels = layer_prunable_weights(unwrap(layer))
        size = sum(_size(w) for w in kernels)
        if size:
            out[key] = float(sum(np.count_nonzero(w.numpy()) for w in kernels)) / size
    return out
