"""Sparsity-aware forward FLOPs of a Keras 3 model, with the conventions of ``keras_sdd.analysis.flops``.

Per example (batch 1), a multiply-add is 2 FLOPs: Dense 2·positions·in·out; EinsumDense 2·∏(index sizes);
Conv 2·∏k·(c_in/groups)·(output elements); depthwise 2·∏k·(output elements); separable depthwise + pointwise;
transposed 2·∏k·c_out·(input elements); MultiHeadAttention its four projections plus the attention core
(2·H·Tq·Tk·(key_dim + value_dim), 1 per query entry for the scaling, 5 per score for the softmax). Minor terms
(``MINOR``, shared with the tf_keras walker): bias 1 per output, BatchNorm 2, LayerNorm 7, softmax 5,
piecewise-linear activations 1, other activations 4, merges (n−1) per output, pooling pool-area per output,
global pooling 1 per input. A layer's weight products cost density × dense cost (density: unpruned share of its
kernels' masks); the rest does not shrink. Training ≈ 3 × forward.

Shapes are recorded by running the model once on a zero batch with each counted layer's ``call`` observed, so
Sequential, functional and subclassed models are all counted (a layer called n times is counted n times).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
from keras import ops

from keras_sdd import flops_formulas as ff
from keras_sdd.errors import ConfigError
from keras_sdd.flops_formulas import MINOR, activation_flops  # noqa: F401  (part of this module's API)
from keras_sdd.keras3.kernel_masks import _kernels_of, get_masks, prune_root
from keras_sdd.keras_line import require_keras3_model

L = keras.layers
_TRANSPOSED = (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)
_DEPTHWISE = (L.DepthwiseConv1D, L.DepthwiseConv2D)
_SEPARABLE = (L.SeparableConv1D, L.SeparableConv2D)
_CONV = (L.Conv1D, L.Conv2D, L.Conv3D)
_MERGE_N_MINUS_1 = (L.Add, L.Subtract, L.Multiply, L.Maximum, L.Minimum)
_WINDOW_POOLS = (L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D, L.AveragePooling1D, L.AveragePooling2D,
                 L.AveragePooling3D)
_GLOBAL_POOLS = (L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D,
                 L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D)
_WEIGHTED = (L.Dense, L.EinsumDense, L.MultiHeadAttention) + _TRANSPOSED + _DEPTHWISE + _SEPARABLE + _CONV
_COUNTED = _WEIGHTED + (L.BatchNormalization, L.LayerNormalization, L.Rescaling, L.Normalization, L.Softmax,
                        L.ReLU, L.LeakyReLU, L.PReLU, L.ELU, L.Activation, L.Average) + _MERGE_N_MINUS_1 \
    + _WINDOW_POOLS + _GLOBAL_POOLS


def _n(shape) -> int:
    return int(np.prod([int(d) for d in tuple(shape)[1:]], dtype=np.int64))


def _shapes(tree) -> List[tuple]:
    return [tuple(t.shape) for t in keras.tree.flatten(tree) if hasattr(t, "shape")]


def _mha(layer, args, kwargs) -> Tuple[float, float]:
    # pylint: disable=protected-access
    query = args[0] if args else kwargs["query"]
    value = args[1] if len(args) > 1 else kwargs["value"]
    key = args[2] if len(args) > 2 else kwargs.get("key")
    key = value if key is None else key
    tq, tk = _n(tuple(query.shape)[:-1] + (1,)), _n(tuple(key.shape)[:-1] + (1,))
    return ff.multi_head_attention(layer._query_dense.kernel.shape, layer._key_dense.kernel.shape,
                                   layer._value_dense.kernel.shape, layer._output_dense.kernel.shape, tq, tk,
                                   layer._use_bias)


def _one_call(layer, args, kwargs, outputs) -> Tuple[float, float]:
    """(weight-product FLOPs, other FLOPs) of one call of a counted layer."""
    if isinstance(layer, L.MultiHeadAttention):
        return _mha(layer, args, kwargs)
    in_shapes = _shapes(args[0] if args else next(iter(kwargs.values())))
    out_n = sum(_n(s) for s in _shapes(outputs))
    in_n = sum(_n(s) for s in in_shapes)
    extra = 0.0
    if getattr(layer, "use_bias", False):
        extra += MINOR["bias"] * out_n
    if hasattr(layer, "activation") and not isinstance(layer, L.Activation):
        extra += activation_flops(getattr(layer, "activation", None)) * out_n
    if isinstance(layer, L.Dense):
        return ff.dense(layer.kernel.shape, out_n), extra
    if isinstance(layer, L.EinsumDense):
        bias = MINOR["bias"] * out_n if getattr(layer, "bias", None) is not None else 0
        return ff.einsum(layer.equation, in_shapes[0], layer.kernel.shape), extra + bias
    if isinstance(layer, _TRANSPOSED):
        return ff.conv_transpose(layer.kernel.shape, in_n), extra
    if isinstance(layer, _SEPARABLE):  # both kernels are masked on this path
        pointwise, depthwise_part = ff.separable(layer.depthwise_kernel.shape,
                                                 layer.pointwise_kernel.shape[-1], out_n)
        return pointwise + depthwise_part, extra
    if isinstance(layer, _DEPTHWISE):
        return ff.depthwise(layer.kernel.shape, out_n), extra
    if isinstance(layer, _CONV):
        return ff.conv(layer.kernel.shape, out_n), extra
    if isinstance(layer, L.BatchNormalization):
        return 0.0, ff.minor("batch_norm", out_n)
    if isinstance(layer, L.LayerNormalization):
        return 0.0, ff.minor("layer_norm", out_n)
    if isinstance(layer, (L.Rescaling, L.Normalization)):
        return 0.0, ff.minor("rescaling", out_n)
    if isinstance(layer, L.Softmax):
        return 0.0, ff.minor("softmax", out_n)
    if isinstance(layer, (L.ReLU, L.LeakyReLU, L.PReLU)):
        return 0.0, ff.minor("piecewise", out_n)
    if isinstance(layer, L.ELU):
        return 0.0, ff.minor("nonlinear", out_n)
    if isinstance(layer, L.Activation):
        return 0.0, ff.minor("activation", out_n, activation=layer.activation)
    if isinstance(layer, _MERGE_N_MINUS_1):
        return 0.0, ff.minor("merge", out_n, n_inputs=len(in_shapes))
    if isinstance(layer, L.Average):
        return 0.0, ff.minor("average", out_n, n_inputs=len(in_shapes))
    if isinstance(layer, _WINDOW_POOLS):
        return 0.0, ff.minor("pool", out_n, pool_size=layer.pool_size)
    if isinstance(layer, _GLOBAL_POOLS):
        return 0.0, ff.minor("global_pool", out_n, in_n=in_n)
    return 0.0, 0.0


def _counted_layers(model) -> List[keras.layers.Layer]:
    """The counted layers, depth first; a MultiHeadAttention is counted whole (its sublayers are not visited)."""
    out: List = []

    def visit(layer):
        # pylint: disable=protected-access
        for sub in layer._flatten_layers(include_self=False, recursive=False):
            if isinstance(sub, _COUNTED):
                out.append(sub)
            if not isinstance(sub, L.MultiHeadAttention):
                visit(sub)

    visit(model)
    return out


@dataclass(frozen=True)
class LayerCost:
    """One counted layer: its dense weight-product FLOPs and other FLOPs per example, summed over its calls."""

    layer: object
    prunable: float
    other: float


def _input_spec(model, input_shape) -> Tuple[tuple, str]:
    if input_shape is not None:
        return tuple(int(d) for d in input_shape), "float32"
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if inputs and len(inputs) == 1 and all(d is not None for d in inputs[0].shape[1:]):
        return tuple(int(d) for d in inputs[0].shape[1:]), inputs[0].dtype
    raise ConfigError(f"FLOPs of {model.name}: give input_shape= (the per-example shape); the model declares no "
                      "single static Input")


def layer_costs(model, input_shape: Optional[Sequence[int]] = None) -> List[LayerCost]:
    """Dense per-example FLOPs of each counted layer of ``model`` (a DistillationModel: its student), recorded by
    one forward pass of a zero example. ``input_shape``: the per-example input shape, needed where the model
    has no single static Input (subclassed models)."""
    require_keras3_model(model, "TrainingCostLogger")
    model = prune_root(model)
    shape, dtype = _input_spec(model, input_shape)
    layers = _counted_layers(model)
    calls: Dict[int, List[Tuple[float, float]]] = {id(layer): [] for layer in layers}

    def observed(layer, call):
        def wrapper(*args, **kwargs):
            outputs = call(*args, **kwargs)
            calls[id(layer)].append(_one_call(layer, args, kwargs, outputs))
            return outputs
        return wrapper

    for layer in layers:
        object.__setattr__(layer, "call", observed(layer, layer.call))
    try:
        model(ops.zeros((1,) + shape, dtype=dtype), training=False)
    finally:
        for layer in layers:
            object.__delattr__(layer, "call")
    return [LayerCost(layer, sum(p for p, _ in calls[id(layer)]), sum(o for _, o in calls[id(layer)]))
            for layer in layers]


def _density(layer) -> float:
    # pylint: disable=protected-access
    subs = [layer._query_dense, layer._key_dense, layer._value_dense, layer._output_dense] \
        if isinstance(layer, L.MultiHeadAttention) else [layer]
    kernels = {str(i): v for i, v in enumerate(v for s in subs for v in _kernels_of(s))}
    masks = get_masks(kernels)
    total = sum(m.size for m in masks.values())
    return float(sum(np.count_nonzero(m) for m in masks.values()) / total) if total else 1.0


def forward_flops(costs: Sequence[LayerCost]) -> Tuple[float, float]:
    """(FLOPs per example at the kernels' current densities — masks, or exact zeros where there are none —,
    dense FLOPs per example)."""
    sparse = dense = 0.0
    for c in costs:
        density = _density(c.layer) if c.prunable else 1.0
        sparse += c.prunable * density + c.other
        dense += c.prunable + c.other
    return sparse, dense


def inference_flops(model, input_shape: Optional[Sequence[int]] = None) -> float:
    """Forward FLOPs of one example at the model's current densities."""
    return forward_flops(layer_costs(model, input_shape))[0]
