"""VGG-like CNN with a depth δ and a width 2^γ, the family swept in the SDD studies.

``depth`` is δ, the number of blocks (default 5); ``width`` is γ (default 5): block 1 has 2^γ channels and each
block doubles them. A block is two [3x3 conv (same padding) -> ReLU -> BatchNorm] followed by a 2x2 max-pool
(a dimension already of size 1 is not pooled; the pool is skipped when both are). The classifier flattens
(``head="flatten"``, default) or global-average-pools (``head="gap"``) into the Dense "logits".
Options: ``head``, ``batch_norm`` (default True). Conv kernels are He-normal; BatchNorm uses PyTorch's
momentum/epsilon (0.1 / 1e-5) like the reference implementations.
"""
from __future__ import annotations

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)
import tf_keras

from keras_sdd.models.registry import (ModelSpec, Seeds, choice, flag, positive_int, refuse, register,
                                       require_image, take_options)

DEFAULT_DEPTH = 5
DEFAULT_WIDTH = 5  # γ: 2**5 = 32 channels in block 1
MAX_DEPTH = 16
MAX_WIDTH = 16
OPTIONS = {"head": "flatten", "batch_norm": True}
BN_MOMENTUM = 0.9  # = PyTorch momentum 0.1
BN_EPSILON = 1e-5


def build_vgg_like(input_shape, num_classes: int, depth: int, width: int, seeds: Seeds, head: str = "flatten",
                   batch_norm: bool = True, name: str = "vgg_like"):
    inputs = tf_keras.Input(shape=tuple(input_shape), name="input")
    x = inputs
    h, w = input_shape[0], input_shape[1]
    for b in range(1, depth + 1):
        filters = 2 ** (width + b - 1)
        for c in (1, 2):
            layer = f"block{b}_conv{c}"
            x = tf_keras.layers.Conv2D(filters, 3, padding="same", kernel_initializer=seeds.he_normal(layer),
                                       name=layer)(x)
            x = tf_keras.layers.ReLU(name=f"block{b}_relu{c}")(x)
            if batch_norm:
                x = tf_keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                                       name=f"block{b}_bn{c}")(x)
        pool = (2 if h >= 2 else 1, 2 if w >= 2 else 1)
        if pool != (1, 1):
            x = tf_keras.layers.MaxPooling2D(pool, name=f"block{b}_pool")(x)
            h, w = h // pool[0], w // pool[1]
    if head == "flatten":
        x = tf_keras.layers.Flatten(name="flatten")(x)
    else:
        x = tf_keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    logits = tf_keras.layers.Dense(num_classes, kernel_initializer=seeds.glorot_uniform("logits"),
                                   name="logits")(x)
    return tf_keras.Model(inputs, logits, name=name)


def _resolve(width, depth, hidden, options):
    refuse("vgg_like", "use depth (δ blocks) and width (γ: 2**γ channels in block 1)", hidden=hidden)
    opts = take_options("vgg_like", options, OPTIONS)
    return {
        "depth": positive_int("vgg_like depth δ (number of blocks)", DEFAULT_DEPTH if depth is None else depth,
                              maximum=MAX_DEPTH),
        "width": positive_int("vgg_like width γ (block 1 has 2**γ channels)",
                              DEFAULT_WIDTH if width is None else width, maximum=MAX_WIDTH),
        "head": choice("vgg_like head", opts["head"], ("flatten", "gap")),
        "batch_norm": flag("vgg_like batch_norm", opts["batch_norm"]),
    }


register(ModelSpec(
    name="vgg_like", resolve=_resolve,
    check_input=lambda cfg, shape: require_image("vgg_like", shape),
    make=lambda shape, classes, seeds, cfg: build_vgg_like(shape, classes, seeds=seeds, **cfg)))
