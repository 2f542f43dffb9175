"""The study's fully connected ReLU networks (``fcn``, ``lenet300_100``) built in Keras 3.

The same architecture and layer names as ``keras_sdd.models.fcn`` (input -> flatten -> dense1.. (ReLU) -> logits),
Glorot-uniform kernels seeded per layer as ``keras_sdd.models.registry.Seeds`` seeds them (crc32 of
"<model seed>/<layer name>"), zero biases. The draws differ from tf_keras' (another random generator), so a
Keras 3 study and a tf_keras study of one seed start from different, equally distributed, initialisations.
"""
from __future__ import annotations

import zlib
from typing import Optional, Sequence

import keras


def layer_seed(model_seed: Optional[int], name: str) -> Optional[int]:
    """The initializer seed of layer ``name``: ``Seeds(model_seed).of(name)`` of the tf_keras models."""
    return None if model_seed is None else zlib.crc32(f"{model_seed}/{name}".encode()) & 0x7FFFFFFF


def build_fcn(input_shape: Sequence[int], num_classes: int, hidden: Sequence[int], seed: Optional[int],
              name: str = "fcn", l2: float = 0.0) -> keras.Model:
    """Flatten -> Dense(h, relu) per h in ``hidden`` -> Dense(num_classes) "logits". ``l2``: the study's penalty
    λ/2·Σ‖kernel‖² over every kernel, the output layer's included, as the tf_keras path adds it (a
    ``keras.regularizers.L2(λ/2)`` per kernel; a pruned weight is 0 and adds nothing)."""
    def reg(_out: bool):
        return keras.regularizers.L2(0.5 * l2) if l2 else None

    inputs = keras.Input(shape=tuple(input_shape), name="input")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for i, units in enumerate(hidden, start=1):
        layer = f"dense{i}"
        x = keras.layers.Dense(units, activation="relu", name=layer, kernel_regularizer=reg(False),
                               kernel_initializer=keras.initializers.GlorotUniform(seed=layer_seed(seed, layer)))(x)
    logits = keras.layers.Dense(num_classes, name="logits", kernel_regularizer=reg(True),
                                kernel_initializer=keras.initializers.GlorotUniform(seed=layer_seed(seed, "logits")))(x)
    return keras.Model(inputs, logits, name=name)
