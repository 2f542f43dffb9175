"""Sparsity-aware FLOPs of a model, counted per layer from its shapes (tf.profiler counts dense FLOPs only).

Why: the papers compare pruning schedules by training compute (PFLOPs) at the sparsity each round trained at; a
pruned weight's multiply-add is work a sparse kernel would not do.

Conventions, per example (batch 1), forward pass:
- A multiply-add is 2 FLOPs (as the TF profiler counts MatMul / Conv2D).
- Dense: 2·positions·in·out, positions = the output elements / out (1 for a vector input, tokens for a sequence).
- Conv (1-3 D, grouped): 2·∏k·(c_in/groups)·(output elements); depthwise: 2·∏k·(output elements); separable:
  depthwise + pointwise (2·c_in·multiplier·output elements); transposed: 2·∏k·c_out·(input elements).
- MultiHeadAttention: the four projections (2·tokens·in·heads·head_dim each) plus the attention core: 2·H·Tq·Tk·
  key_dim for QKᵀ, 2·H·Tq·Tk·value_dim for the weighted sum, 1 per query entry for the 1/√d scaling and
  ``MINOR['softmax']`` per score; keras_sdd's ViT ``DotProductAttention`` likewise (its projections are Dense).
- Minor terms, FLOPs per element (``MINOR``): bias 1 per output; BatchNorm 2 (inference: scale and shift);
  LayerNorm 7 (mean, centre, square, variance, normalise, scale, shift); softmax 5 (max, subtract, exp, sum,
  divide); piecewise-linear activations (ReLU, leaky ReLU, ...) 1; other activations (GELU, sigmoid, tanh, swish,
  ELU, ...) 4; Add / Subtract / Multiply / Maximum / Minimum (n−1) per output, Average n; windowed pooling
  pool-area per output, global pooling 1 per input; a Dense or Conv ``activation=`` is counted like the layer.
  Reshapes, dropout (inference), concatenation, embeddings: 0.
- Sparsity: a layer's weight products (the kernels pruning masks) cost density × dense cost, density = the share
  of unpruned entries of the layer's pruned kernels; the attention core and the minor terms do not shrink. These
  are the FLOPs a sparse kernel would do; TensorFlow's dense kernels do the dense work whatever the masks.
- Training: forward + backward ≈ 3 × forward, per example and epoch.
- Two conventions per round in a study (``rounds.csv``): ``train_flops`` is this sparse-aware count (a
  distillation teacher charged at its own sparse-aware forward, every step, or once when its logits are cached);
  ``train_flops_dense`` is seed paper 1's: the dense student's training FLOPs for the epochs trained, no discount
  for sparsity, no teacher — every round costs the same.
- A layer Keras called n times (a shared layer) is counted n times; nested models are walked through.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)

import numpy as np
import tf_keras
from tf_keras.src.layers.convolutional.base_conv import Conv

from keras_sdd import flops_formulas as ff
from keras_sdd.flops_formulas import MINOR, activation_flops  # noqa: F401  (part of this module's API)
from keras_sdd.models import vit
from keras_sdd.models.params import unwrap, walk_layers

L = tf_keras.layers
_MERGE_N_MINUS_1 = (L.Add, L.Subtract, L.Multiply, L.Maximum, L.Minimum)
_TRANSPOSED = (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)
_DEPTHWISE = (L.DepthwiseConv1D, L.DepthwiseConv2D)
_SEPARABLE = (L.SeparableConv1D, L.SeparableConv2D)
_WINDOW_POOLS = (L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D, L.AveragePooling1D, L.AveragePooling2D,
                 L.AveragePooling3D)
_GLOBAL_POOLS = (L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D,
                 L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D)

_WEIGHTED = (L.Dense, L.EinsumDense, Conv, L.MultiHeadAttention)
#: Every layer kind ``_one_call`` counts; all others (reshapes, dropout, concatenation, embeddings...) are free.
_COUNTED = _WEIGHTED + (vit.DotProductAttention, vit.PositionEmbedding, L.BatchNormalization,
                        L.LayerNormalization, L.Rescaling, L.Normalization, L.Softmax, L.ReLU, L.LeakyReLU, L.PReLU,
                        L.ThresholdedReLU, L.ELU, L.Activation, L.Average) + _MERGE_N_MINUS_1 + _WINDOW_POOLS \
    + _GLOBAL_POOLS


@dataclass(frozen=True)
class FlopsReport:
    """Forward FLOPs per example: per layer key (walk_layers keys, layers with any FLOPs), the total at the
    given densities, the dense total, and the dense FLOPs of the weight products alone (what pruning shrinks)."""

    per_layer: Dict[str, float]
    dense_total: float
    total: float
    prunable_dense: float = 0.0


def _per_example(shape) -> int:
    dims = list(shape)[1:]
    if any(d is None for d in dims):
        raise ValueError(f"FLOPs need static shapes; got {tuple(shape)}")
    return int(np.prod(dims, dtype=np.int64))


def _shape_list(shapes) -> List[tuple]:
    """A node's input or output shapes as a list of shape tuples."""
    if shapes is None:
        return []
    if isinstance(shapes, (list, tuple)) and shapes and isinstance(shapes[0], (list, tuple)):
        return [tuple(s) for s in shapes]
    if hasattr(shapes, "as_list"):
        return [tuple(shapes.as_list())]
    return [tuple(shapes)]


def _calls(outer) -> List[Tuple[List[tuple], List[tuple], object]]:
    """(input shapes, output shapes, node) of every call Keras recorded for the layer."""
    out = []
    for node in getattr(outer, "_inbound_nodes", []):
        if getattr(node, "is_input", False):
            continue
        out.append((_shape_list(node.input_shapes), _shape_list(node.output_shapes), node))
    return out


def _mha_lengths(node, in_shapes) -> Tuple[int, int]:
    args = list(getattr(node, "call_args", ()) or ())
    kwargs = dict(getattr(node, "call_kwargs", {}) or {})
    query = args[0] if args else kwargs.get("query")
    value = args[1] if len(args) > 1 else kwargs.get("value")
    key = args[2] if len(args) > 2 else kwargs.get("key")
    key = value if key is None else key
    q_shape = tuple(query.shape) if query is not None else in_shapes[0]
    k_shape = tuple(key.shape) if key is not None else q_shape
    return _per_example(q_shape[:-1] + (1,)), _per_example(k_shape[:-1] + (1,))


def _mha(inner, node, in_shapes, out_n) -> Tuple[float, float]:
    # pylint: disable=protected-access
    tq, tk = _mha_lengths(node, in_shapes)
    return ff.multi_head_attention(inner._query_dense.kernel.shape, inner._key_dense.kernel.shape,
                                   inner._value_dense.kernel.shape, inner._output_dense.kernel.shape, tq, tk,
                                   inner._use_bias)


def _dot_product_attention(inner, in_shapes) -> float:
    q, k = in_shapes[0], in_shapes[1]
    tq, tk, dim = _per_example(q[:-1] + (1,)), _per_example(k[:-1] + (1,)), int(q[-1])
    scores = int(inner.num_heads) * tq * tk
    return 4.0 * tq * tk * dim + (MINOR["scale"] + MINOR["softmax"]) * scores


def _one_call(inner, node, in_shapes, out_shapes) -> Tuple[float, float]:
    """(weight-product FLOPs, other FLOPs) of one call of an unwrapped layer."""
    if not isinstance(inner, _COUNTED):
        return 0.0, 0.0
    out_n = sum(_per_example(s) for s in out_shapes)
    in_n = sum(_per_example(s) for s in in_shapes)
    extra = 0.0
    if getattr(inner, "use_bias", False):
        extra += MINOR["bias"] * out_n
    if hasattr(inner, "activation") and not isinstance(inner, L.Activation):
        extra += activation_flops(getattr(inner, "activation", None)) * out_n
    if isinstance(inner, L.Dense):
        return ff.dense(inner.kernel.shape, out_n), extra
    if isinstance(inner, L.EinsumDense):
        bias = MINOR["bias"] * out_n if getattr(inner, "bias", None) is not None else 0
        return ff.einsum(inner.equation, in_shapes[0], inner.kernel.shape), extra + bias
    if isinstance(inner, _TRANSPOSED):
        return ff.conv_transpose(inner.kernel.shape, in_n), extra
    if isinstance(inner, _SEPARABLE):  # the pointwise kernel is the pruned one
        pointwise, depthwise_part = ff.separable(inner.depthwise_kernel.shape,
                                                 inner.pointwise_kernel.shape[-1], out_n)
        return pointwise, depthwise_part + extra
    if isinstance(inner, _DEPTHWISE):
        return ff.depthwise(inner.depthwise_kernel.shape, out_n), extra
    if isinstance(inner, Conv) and hasattr(inner, "kernel"):
        return ff.conv(inner.kernel.shape, out_n), extra
    if isinstance(inner, L.MultiHeadAttention):
        return _mha(inner, node, in_shapes, out_n)
    if isinstance(inner, vit.DotProductAttention):
        return 0.0, _dot_product_attention(inner, in_shapes)
    if isinstance(inner, vit.PositionEmbedding):
        return 0.0, float(MINOR["add"] * out_n)
    if isinstance(inner, L.BatchNormalization):
        return 0.0, ff.minor("batch_norm", out_n)
    if isinstance(inner, L.LayerNormalization):
        return 0.0, ff.minor("layer_norm", out_n)
    if isinstance(inner, (L.Rescaling, L.Normalization)):
        return 0.0, ff.minor("rescaling", out_n)
    if isinstance(inner, L.Softmax):
        return 0.0, ff.minor("softmax", out_n)
    if isinstance(inner, (L.ReLU, L.LeakyReLU, L.PReLU, L.ThresholdedReLU)):
        return 0.0, ff.minor("piecewise", out_n)
    if isinstance(inner, L.ELU):
        return 0.0, ff.minor("nonlinear", out_n)
    if isinstance(inner, L.Activation):
        return 0.0, ff.minor("activation", out_n, activation=inner.activation)
    if isinstance(inner, _MERGE_N_MINUS_1):
        return 0.0, ff.minor("merge", out_n, n_inputs=len(in_shapes))
    if isinstance(inner, L.Average):
        return 0.0, ff.minor("average", out_n, n_inputs=len(in_shapes))
    if isinstance(inner, _WINDOW_POOLS):
        return 0.0, ff.minor("pool", out_n, pool_size=inner.pool_size)
    if isinstance(inner, _GLOBAL_POOLS):
        return 0.0, ff.minor("global_pool", out_n, in_n=in_n)
    return 0.0, 0.0


def layer_flops(outer, inner=None) -> Tuple[float, float]:
    """(weight-product FLOPs, other FLOPs) of one layer per example, dense, summed over the calls Keras recorded.
    ``outer`` is the layer as it sits in the model (it holds the shapes), ``inner`` the unwrapped layer (it holds
    the kernels). A weighted layer without recorded shapes (a subclassed model's) is refused."""
    inner = unwrap(outer) if inner is None else inner
    calls = _calls(outer)
    if not calls:
        if isinstance(inner, _WEIGHTED):
            raise ValueError(f"layer {inner.name!r} has no recorded input/output shapes: FLOPs are counted on "
                             "functional or Sequential models built on an Input")
        return 0.0, 0.0
    prunable = other = 0.0
    for in_shapes, out_shapes, node in calls:
        p, o = _one_call(inner, node, in_shapes, out_shapes)
        prunable, other = prunable + p, other + o
    return prunable, other


def densities_of(model: tf_keras.Model) -> Dict[str, float]:
    """{layer key: 1 − sparsity} from the model's pruning masks (tfmot ``PruneLowMagnitude`` wrappers, keras_sdd's
    or stock); empty when the model has none."""
    from keras_sdd.pruning import tfmot_bridge

    if not tfmot_bridge.wrappers(model):
        return {}
    return {k: 1.0 - s for k, s in tfmot_bridge.sparsity_report(model).per_layer.items()}


def densities_from_zeros(model: tf_keras.Model) -> Dict[str, float]:
    """{layer key: density} read from the kernels' exact zeros: the densities of a pruned model without masks
    (a stripped teacher, a loaded file); a model without zeros reads as dense."""
    from keras_sdd.models.params import layer_densities_from_zeros

    return {k: d for k, d in layer_densities_from_zeros(model).items() if d < 1.0}


def forward_flops(model: tf_keras.Model, densities: Optional[Mapping[str, float]] = None) -> FlopsReport:
    """Forward FLOPs per example. ``densities``: {layer key: density in [0, 1]} (missing layers are dense); by
    default read from the model's pruning masks; ``{}`` counts the model dense."""
    densities = densities_of(model) if densities is None else dict(densities)
    layers: Sequence = list(walk_layers(model))
    unknown = set(densities) - {key for key, _ in layers}
    if unknown:
        raise ValueError(f"densities name layers the model does not have: {sorted(unknown)}")
    bad = {k: d for k, d in densities.items() if not 0.0 <= float(d) <= 1.0}
    if bad:
        raise ValueError(f"densities must lie in [0, 1]: {bad}")
    per_layer: Dict[str, float] = {}
    dense = total = prunable_dense = 0.0
    for key, layer in layers:
        prunable, other = layer_flops(layer)
        if prunable or other:
            sparse = prunable * float(densities.get(key, 1.0)) + other
            per_layer[key] = sparse
            dense += prunable + other
            prunable_dense += prunable
            total += sparse
    return FlopsReport(per_layer, dense, total, prunable_dense)


def inference_flops(model: tf_keras.Model, densities: Optional[Mapping[str, float]] = None) -> float:
    """Forward FLOPs of one example at the model's (or the given) densities."""
    return forward_flops(model, densities).total


def training_flops(model: tf_keras.Model, examples: int, epochs: int,
                   densities: Optional[Mapping[str, float]] = None) -> float:
    """FLOPs of training on ``examples`` examples for ``epochs`` epochs: 3 × forward (forward + backward)."""
    return 3.0 * inference_flops(model, densities) * int(examples) * int(epochs)
