"""Fully connected ReLU networks: the one/two-hidden-layer width-w nets of the SDD papers, and LeNet-300-100.

``fcn`` takes its hidden widths from ``hidden`` (a sequence of ints), from ``width`` x ``depth`` (default: one
hidden layer of 100 units), or from both: ``depth`` layers of ``width`` units followed by the fixed ``hidden``
layers — seed 2's Table 1 network 784→w→100→10 is ``width=w, depth=1, hidden=(100,)``, so a width sweep varies the
first layer only. Image inputs are flattened first. Kernels are Glorot-uniform (Keras'
default), biases zero.
"""
from __future__ import annotations

import numbers
from typing import Sequence

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)
import tf_keras

from keras_sdd.errors import ConfigError
from keras_sdd.models.registry import ModelSpec, Seeds, positive_int, refuse, register, take_options

DEFAULT_WIDTH = 100
DEFAULT_DEPTH = 1
LENET300_100 = (300, 100)


def build_fcn(input_shape, num_classes: int, hidden: Sequence[int], seeds: Seeds, name: str = "fcn"):
    """Flatten -> Dense(h, relu) for each h in ``hidden`` -> Dense(num_classes) named "logits"."""
    inputs = tf_keras.Input(shape=tuple(input_shape), name="input")
    x = tf_keras.layers.Flatten(name="flatten")(inputs)
    for i, units in enumerate(hidden, start=1):
        layer = f"dense{i}"
        x = tf_keras.layers.Dense(units, activation="relu", kernel_initializer=seeds.glorot_uniform(layer),
                                  name=layer)(x)
    logits = tf_keras.layers.Dense(num_classes, kernel_initializer=seeds.glorot_uniform("logits"),
                                   name="logits")(x)
    return tf_keras.Model(inputs, logits, name=name)


def _resolve_fcn(width, depth, hidden, options):
    take_options("fcn", options, {})
    tail: tuple = ()
    if hidden is not None:
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence) or not hidden:
            raise ConfigError(f"fcn hidden must be a non-empty sequence of ints >= 1, got {hidden!r}")
        for h in hidden:
            if isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1:
                raise ConfigError(f"fcn hidden must be a non-empty sequence of ints >= 1, got {hidden!r}")
        tail = tuple(int(h) for h in hidden)
        if width is None:
            if depth is not None:
                raise ConfigError("fcn depth counts the layers of `width` units; with hidden alone give no depth")
            return {"hidden": tail}
    width = positive_int("fcn width (units per hidden layer)", DEFAULT_WIDTH if width is None else width)
    depth = positive_int("fcn depth (number of hidden layers)", DEFAULT_DEPTH if depth is None else depth)
    return {"hidden": (width,) * depth + tail}


def _resolve_lenet(width, depth, hidden, options):
    refuse("lenet300_100", "it is fixed at hidden=(300, 100); use model fcn for other sizes",
           width=width, depth=depth, hidden=hidden)
    take_options("lenet300_100", options, {})
    return {"hidden": LENET300_100}


register(ModelSpec(
    name="fcn", resolve=_resolve_fcn,
    make=lambda shape, classes, seeds, cfg: build_fcn(shape, classes, cfg["hidden"], seeds, name="fcn")))
register(ModelSpec(
    name="lenet300_100", resolve=_resolve_lenet,
    make=lambda shape, classes, seeds, cfg: build_fcn(shape, classes, cfg["hidden"], seeds,
                                                      name="lenet300_100")))
