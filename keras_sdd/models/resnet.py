"""CIFAR-style ResNets built from one BasicBlock: ResNet-18 and a small ResNet-6-like net for MNIST.

Both use a 3x3 stride-1 stem conv (no max-pool), BasicBlocks (3x3 conv-BN-ReLU, 3x3 conv-BN, add, ReLU) with a
projection shortcut (1x1 conv + BN) wherever the shape changes, global average pooling and a Dense "logits".
``width`` is a channel multiplier (default 1.0): channels = max(1, round(c * width)).

- ``resnet18``: stages of [2, 2, 2, 2] blocks with 64-128-256-512 channels, strides 1-2-2-2 (kuangliu/SDD).
- ``resnet_small``: ``depth`` stages (default 2, at most 4) of one block each, 64-128-... channels, strides
  1-2-2-...: with depth 2 that is stem + 2 blocks + classifier = 6 weight layers.

Convs have no bias (BatchNorm follows); kernels He-normal; BatchNorm momentum/epsilon as in PyTorch.
"""
from __future__ import annotations

from typing import Sequence

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)
import tf_keras

from keras_sdd.models.registry import (ModelSpec, Seeds, positive_float, positive_int, refuse, register,
                                       require_image, take_options)

BN_MOMENTUM = 0.9  # = PyTorch momentum 0.1
BN_EPSILON = 1e-5
STAGE_CHANNELS = (64, 128, 256, 512)
RESNET18_BLOCKS = (2, 2, 2, 2)
SMALL_DEFAULT_DEPTH = 2


def scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, seeds: Seeds):
    x = tf_keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                               kernel_initializer=seeds.he_normal(f"{name}_conv"), name=f"{name}_conv")(x)
    return tf_keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)


def basic_block(x, filters: int, stride: int, name: str, seeds: Seeds):
    """The ResNet BasicBlock; projection shortcut when the stride or the channel count changes."""
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{name}_shortcut", seeds)
    y = _conv_bn(x, filters, 3, stride, f"{name}_1", seeds)
    y = tf_keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv_bn(y, filters, 3, 1, f"{name}_2", seeds)
    y = tf_keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return tf_keras.layers.ReLU(name=f"{name}_relu2")(y)


def build_resnet(input_shape, num_classes: int, blocks: Sequence[int], width: float, seeds: Seeds,
                 name: str = "resnet"):
    """Stem, then stage i (channels STAGE_CHANNELS[i] * width, stride 1 for the first stage else 2) of
    ``blocks[i]`` BasicBlocks, global average pool, Dense "logits"."""
    inputs = tf_keras.Input(shape=tuple(input_shape), name="input")
    x = _conv_bn(inputs, scaled(STAGE_CHANNELS[0], width), 3, 1, "stem", seeds)
    x = tf_keras.layers.ReLU(name="stem_relu")(x)
    for s, n in enumerate(blocks):
        filters = scaled(STAGE_CHANNELS[s], width)
        for b in range(n):
            stride = 2 if (s > 0 and b == 0) else 1
            x = basic_block(x, filters, stride, f"stage{s + 1}_block{b + 1}", seeds)
    x = tf_keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    logits = tf_keras.layers.Dense(num_classes, kernel_initializer=seeds.glorot_uniform("logits"),
                                   name="logits")(x)
    return tf_keras.Model(inputs, logits, name=name)


def _width(model: str, width) -> float:
    return positive_float(f"{model} width (channel multiplier)", 1.0 if width is None else width)


def _resolve_resnet18(width, depth, hidden, options):
    refuse("resnet18", "it is fixed at [2, 2, 2, 2] blocks (use resnet_small for fewer); width is the channel "
                       "multiplier", depth=depth, hidden=hidden)
    take_options("resnet18", options, {})
    return {"blocks": RESNET18_BLOCKS, "width": _width("resnet18", width)}


def _resolve_small(width, depth, hidden, options):
    refuse("resnet_small", "use depth (number of one-block stages) and width (channel multiplier)",
           hidden=hidden)
    take_options("resnet_small", options, {})
    depth = positive_int("resnet_small depth (number of one-block stages)",
                         SMALL_DEFAULT_DEPTH if depth is None else depth, maximum=len(STAGE_CHANNELS))
    return {"blocks": (1,) * depth, "width": _width("resnet_small", width)}


register(ModelSpec(
    name="resnet18", resolve=_resolve_resnet18,
    check_input=lambda cfg, shape: require_image("resnet18", shape),
    make=lambda shape, classes, seeds, cfg: build_resnet(shape, classes, seeds=seeds, name="resnet18", **cfg)))
register(ModelSpec(
    name="resnet_small", resolve=_resolve_small,
    check_input=lambda cfg, shape: require_image("resnet_small", shape),
    make=lambda shape, classes, seeds, cfg: build_resnet(shape, classes, seeds=seeds, name="resnet_small",
                                                         **cfg)))
