"""Sparsity-aware FLOPs of a model, counted per layer from its shapes (tf.profiler counts dense FLOPs only).

Conventions, per example: a multiply-add is 2 FLOPs. Dense: 2·positions·in·out (+ out·positions for the bias);
Conv: 2·k_h·k_w·(c_in/groups)·c_out·H_out·W_out (+ bias); dot-product attention: 2·T·T·D for QKᵀ and again for
the weighted sum, 3 per score for the softmax; minor terms: BatchNorm 2 and LayerNorm 5 per element, activations
and Add 1 per output element (per extra input for Add), pooling 1 per input element. A pruned layer's matrix
product costs its density (share of unpruned kernel entries) times the dense cost; the minor terms do not shrink.
Training: forward + backward ≈ 3 × forward per example and epoch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional

import keras_sdd  # noqa: F401  (pins Keras 2 before TensorFlow loads)

import numpy as np
import tf_keras

from keras_sdd.models.params import unwrap, walk_layers

_ACTIVATIONS = (tf_keras.layers.ReLU, tf_keras.layers.Activation, tf_keras.layers.LeakyReLU,
                tf_keras.layers.Softmax, tf_keras.layers.ELU)
_POOLS = (tf_keras.layers.MaxPooling2D, tf_keras.layers.AveragePooling2D, tf_keras.layers.GlobalAveragePooling2D,
          tf_keras.layers.GlobalMaxPooling2D, tf_keras.layers.MaxPooling1D, tf_keras.layers.GlobalAveragePooling1D)


@dataclass
class FlopsReport:
    """Forward FLOPs per example: per layer key, the dense total and the total at the given densities."""

    per_layer: Dict[str, float]
    dense_total: float
    total: float


def _shape(layer, which: str):
    try:
        return getattr(layer, f"{which}_shape")
    except (AttributeError, RuntimeError):
        return None


def _elements(shape) -> int:
    if shape is None:
        return 0
    if isinstance(shape, list):
        return sum(_elements(s) for s in shape)
    return int(np.prod([d for d in shape[1:] if d is not None], dtype=np.int64))


def layer_flops(outer, inner=None):
    """(prunable FLOPs, other FLOPs) of one layer per example; ``outer`` is the layer as it sits in the model
    (it holds the shapes), ``inner`` the unwrapped layer (it holds the kernel)."""
    inner = unwrap(outer) if inner is None else inner
    out_shape, in_shape = _shape(outer, "output"), _shape(outer, "input")
    out_n = _elements(out_shape)
    if isinstance(inner, tf_keras.layers.Dense):
        d_in, d_out = inner.kernel.shape
        positions = out_n // int(d_out) if d_out else 0
        return 2.0 * positions * int(d_in) * int(d_out), float(out_n if inner.use_bias else 0)
    if isinstance(inner, tf_keras.layers.DepthwiseConv2D):
        kh, kw, cin, mult = inner.depthwise_kernel.shape
        return 2.0 * int(kh) * int(kw) * out_n, float(out_n if inner.use_bias else 0)
    if isinstance(inner, tf_keras.layers.Conv2D):
        kh, kw, cin_g, cout = inner.kernel.shape
        return 2.0 * int(kh) * int(kw) * int(cin_g) * out_n, float(out_n if inner.use_bias else 0)
    if isinstance(inner, tf_keras.layers.MultiHeadAttention):
        q_shape = in_shape[0] if isinstance(in_shape, list) else in_shape
        t, d = int(q_shape[1]), int(q_shape[-1])
        heads, key_dim = inner._num_heads, inner._key_dim  # pylint: disable=protected-access
        proj = 2.0 * t * d * heads * key_dim * 4
        return proj, 4.0 * heads * t * t * key_dim + 3.0 * heads * t * t
    if type(inner).__name__ == "DotProductAttention" and isinstance(in_shape, list):
        t, d = int(in_shape[0][1]), int(in_shape[0][-1])
        heads = int(getattr(inner, "heads", getattr(inner, "num_heads", 1)))
        return 0.0, 4.0 * t * t * d + 3.0 * heads * t * t
    if isinstance(inner, tf_keras.layers.BatchNormalization):
        return 0.0, 2.0 * out_n
    if isinstance(inner, tf_keras.layers.LayerNormalization):
        return 0.0, 5.0 * out_n
    if isinstance(inner, _ACTIVATIONS):
        return 0.0, float(out_n)
    if isinstance(inner, tf_keras.layers.Add):
        return 0.0, float(out_n * (len(in_shape) - 1 if isinstance(in_shape, list) else 1))
    if isinstance(inner, _POOLS):
        return 0.0, float(_elements(in_shape))
    return 0.0, 0.0


def densities_of(model: tf_keras.Model) -> Dict[str, float]:
    """{layer key: 1 − sparsity} from the model's pruning masks (empty when it has no tfmot wrappers)."""
    from keras_sdd.pruning import tfmot_bridge

    if not tfmot_bridge.wrappers(model):
        return {}
    return {k: 1.0 - s for k, s in tfmot_bridge.sparsity_report(model).per_layer.items()}


def forward_flops(model: tf_keras.Model, densities: Optional[Mapping[str, float]] = None) -> FlopsReport:
    """Forward FLOPs per example; ``densities`` {layer key: density} (default: read from the model's masks)."""
    densities = densities_of(model) if densities is None else densities
    per_layer: Dict[str, float] = {}
    dense = total = 0.0
    for key, layer in walk_layers(model):
        prunable, other = layer_flops(layer)
        if prunable or other:
            sparse = prunable * float(densities.get(key, 1.0)) + other
            per_layer[key] = sparse
            dense += prunable + other
            total += sparse
    return FlopsReport(per_layer, dense, total)


def inference_flops(model: tf_keras.Model, densities: Optional[Mapping[str, float]] = None) -> float:
    """Forward FLOPs of one example at the model's (or the given) densities."""
    return forward_flops(model, densities).total


def training_flops(model: tf_keras.Model, examples: int, epochs: int,
                   densities: Optional[Mapping[str, float]] = None) -> float:
    """FLOPs of training on ``examples`` examples for ``epochs`` epochs: 3 × forward (forward + backward)."""
    return 3.0 * inference_flops(model, densities) * int(examples) * int(epochs)
