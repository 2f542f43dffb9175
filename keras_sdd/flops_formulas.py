"""The FLOPs formulas, per example (batch 1) and forward, shared by the tf_keras walker
(``keras_sdd.analysis.flops``) and the Keras 3 one (``keras_sdd.keras3.flops``): pure arithmetic on shapes, no
Keras. A multiply-add is 2 FLOPs (as the TF profiler counts MatMul / Conv2D); see ``keras_sdd.analysis.flops``
for the conventions in words."""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

#: FLOPs per element of the minor (non-matmul) operations.
MINOR = {"bias": 1, "batch_norm": 2, "layer_norm": 7, "softmax": 5, "piecewise": 1, "nonlinear": 4,
         "add": 1, "scale": 1}
PIECEWISE = {"relu", "relu6", "leaky_relu", "hard_sigmoid", "hard_silu", "hard_swish"}
FREE = {"linear", None, ""}


def activation_flops(activation) -> int:
    """FLOPs per element of a Keras activation (a function or its name)."""
    name = activation if isinstance(activation, str) or activation is None else getattr(activation, "__name__", "")
    if name in FREE:
        return 0
    if name in ("softmax", "log_softmax"):
        return MINOR["softmax"]
    return MINOR["piecewise"] if name in PIECEWISE else MINOR["nonlinear"]


def _prod(dims) -> int:
    return int(np.prod([int(d) for d in dims], dtype=np.int64))


def einsum(equation: str, in_shape: tuple, kernel_shape) -> float:
    """2 × the product of every index's size (batch counted 1): the multiply-adds of ``input, kernel -> out``."""
    in_spec, k_spec = equation.split("->")[0].split(",")
    dims = [1] + [int(d) for d in in_shape[1:]]  # per example
    ellipsis = 1
    if "..." in in_spec:
        head, tail = in_spec.split("...")
        n_ell = len(dims) - len(head) - len(tail)
        ellipsis = _prod(dims[len(head):len(head) + n_ell])
        dims = dims[:len(head)] + dims[len(head) + n_ell:]
        in_spec = head + tail
    sizes: Dict[str, int] = dict(zip(in_spec, dims))
    sizes.update(zip(k_spec, (int(d) for d in kernel_shape)))
    return 2.0 * ellipsis * float(np.prod(list(sizes.values()), dtype=np.float64))


def dense(kernel_shape, out_n: int) -> float:
    """Dense: 2·positions·in·out, positions = output elements / out (tokens for a sequence)."""
    d_in, d_out = (int(d) for d in kernel_shape)
    return 2.0 * (out_n // d_out) * d_in * d_out


def conv(kernel_shape, out_n: int) -> float:
    """Conv 1–3 D (grouped): 2·∏window·(c_in/groups)·(output elements); kernel (*window, c_in/groups, c_out)."""
    return 2.0 * _prod(tuple(kernel_shape)[:-1]) * out_n


def conv_transpose(kernel_shape, in_n: int) -> float:
    """Transposed conv: 2·∏window·c_out·(input elements); kernel (*window, c_out, c_in)."""
    k = tuple(kernel_shape)
    return 2.0 * _prod(k[:-2]) * int(k[-2]) * in_n


def depthwise(depthwise_kernel_shape, out_n: int) -> float:
    """Depthwise conv: 2·∏window·(output elements); kernel (*window, c_in, multiplier)."""
    return 2.0 * _prod(tuple(depthwise_kernel_shape)[:-2]) * out_n


def separable(depthwise_kernel_shape, pointwise_out: int, out_n: int) -> Tuple[float, float]:
    """Separable conv: (pointwise, depthwise) FLOPs — 2·c_in·multiplier·(output elements) and
    2·∏window·positions·c_in·multiplier; each walker counts as pruned the part its pruning masks."""
    dk = tuple(depthwise_kernel_shape)
    window, mid = _prod(dk[:-2]), int(dk[-2]) * int(dk[-1])
    positions = out_n // int(pointwise_out)
    return 2.0 * mid * out_n, 2.0 * window * positions * mid


def multi_head_attention(q_kernel, k_kernel, v_kernel, o_kernel, tq: int, tk: int,
                         use_bias: bool) -> Tuple[float, float]:
    """MultiHeadAttention: (the four projections, the attention core + biases): 2·H·Tq·Tk·(key_dim + value_dim),
    1 per query entry for the 1/√d scaling, ``MINOR['softmax']`` per score."""
    heads, key_dim, value_dim = int(q_kernel[1]), int(q_kernel[2]), int(v_kernel[2])
    d_out = _prod(tuple(o_kernel)[2:])
    proj = 2.0 * (tq * int(q_kernel[0]) * heads * key_dim + tk * int(k_kernel[0]) * heads * key_dim
                  + tk * int(v_kernel[0]) * heads * value_dim + tq * heads * value_dim * d_out)
    scores = heads * tq * tk
    core = (2.0 * scores * key_dim + 2.0 * scores * value_dim + MINOR["scale"] * tq * heads * key_dim
            + MINOR["softmax"] * scores)
    bias = (tq * heads * key_dim + tk * heads * key_dim + tk * heads * value_dim + tq * d_out) if use_bias else 0
    return proj, core + MINOR["bias"] * bias


def minor(kind: str, out_n: int, in_n: int = 0, n_inputs: int = 1, pool_size: Sequence[int] = (),
          activation=None) -> float:
    """FLOPs of a layer without weight products, by kind: 'batch_norm', 'layer_norm', 'rescaling', 'softmax',
    'piecewise', 'nonlinear', 'activation', 'merge' (n−1 per output), 'average' (n per output), 'pool'
    (pool area per output), 'global_pool' (1 per input)."""
    if kind in ("batch_norm", "layer_norm", "softmax", "piecewise", "nonlinear"):
        return float(MINOR[kind] * out_n)
    if kind == "rescaling":
        return 2.0 * out_n
    if kind == "activation":
        return float(activation_flops(activation) * out_n)
    if kind == "merge":
        return float(MINOR["add"] * out_n * (n_inputs - 1))
    if kind == "average":
        return float(MINOR["add"] * out_n * n_inputs)
    if kind == "pool":
        return float(_prod(pool_size) * out_n)
    if kind == "global_pool":
        return float(in_n)
    raise ValueError(f"unknown layer kind {kind!r}")
