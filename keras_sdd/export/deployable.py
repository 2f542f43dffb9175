"""A round's model as something to deploy: no pruning wrappers, and the study's input normalisation built in, so
the exported file takes the data as stored (pixel values 0..255 or raw features, as float32) and a user needs
nothing from keras_sdd to run it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence, Tuple

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)
import numpy as np
import tf_keras

from keras_sdd.errors import ConfigError
from keras_sdd.pruning import tfmot_bridge


@dataclass(frozen=True)
class WeightCount:
    """Entries of every weight of a model (``total``) and how many are non-zero (``nonzero``)."""

    total: int
    nonzero: int


def all_layers(model) -> Iterator[tf_keras.layers.Layer]:
    """Every layer of a model, nested models' layers included, depth first."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, tf_keras.Model):
            yield from all_layers(layer)


def check_unwrapped(model) -> None:
    """Refuses (naming the layer) a model that still holds a pruning wrapper: its masks would be exported as
    extra weights and its kernels would not be stored sparse."""
    for layer in all_layers(model):
        if isinstance(layer, tfmot_bridge.PruneLowMagnitude):
            raise ConfigError(f"layer '{layer.name}' ({type(layer).__name__}) is still a pruning wrapper; strip the "
                              "model before exporting it")


def check_serializable(model) -> None:
    """Refuses (naming the layer) a custom layer class Keras cannot rebuild from a ``.keras`` file: one that is
    neither a tf_keras built-in nor registered with ``tf_keras.saving.register_keras_serializable``."""
    for layer in all_layers(model):
        cls = type(layer)
        if cls.__module__.startswith("tf_keras.") or isinstance(layer, tf_keras.Model):
            continue
        if tf_keras.saving.get_registered_object(tf_keras.saving.get_registered_name(cls)) is not cls:
            raise ConfigError(f"layer '{layer.name}' ({cls.__name__}) cannot be exported as keras: its class is not "
                              "registered with tf_keras.saving.register_keras_serializable, so the file could not "
                              "be loaded back")


def weight_count(model) -> WeightCount:
    """Entries and non-zero entries of the model's weights (masks excluded: call on a stripped model)."""
    total = nonzero = 0
    for w in model.weights:
        v = w.numpy()
        total += int(v.size)
        nonzero += int(np.count_nonzero(v))
    return WeightCount(total, nonzero)


def deployable_model(model: tf_keras.Model, bundle) -> tf_keras.Model:
    """``model`` (stripped) behind the bundle's normalisation: raw float32 inputs -> logits.

    Images: ``x / 255`` then ``(x - mean) / std`` per channel; features: ``(x - mean) / std`` per feature (as
    ``DataBundle.normalize``). The wrapped model shares its layers (hence weights) with ``model``."""
    check_unwrapped(model)
    shape = tuple(int(s) for s in bundle.info.input_shape)
    inputs = tf_keras.Input(shape=shape, dtype="float32", name="raw_input")
    x = inputs
    if bundle.images:
        x = tf_keras.layers.Rescaling(1.0 / 255.0, name="scale_0_1")(x)
    if bundle.mean is not None:
        x = tf_keras.layers.Normalization(axis=-1, mean=bundle.mean.tolist(),
                                          variance=(bundle.std.astype(np.float64) ** 2).tolist(),
                                          name="standardize")(x)
    return tf_keras.Model(inputs, model(x, training=False), name=f"{model.name}_deployable")


def in_float32(model: tf_keras.Model, config, input_shape, num_classes: int) -> tf_keras.Model:
    """A mixed-precision study's stripped model rebuilt to compute in float32 with the same (float32) weights.

    TFLite has no bfloat16 kernels (its MatMul refuses them), and a deployed model gains nothing from a GPU's
    reduced precision on a CPU; the study's weights are float32 already (``--mixed_precision`` keeps variables in
    float32), so only the compute dtype changes and the accuracy may move by rounding. Other models: unchanged."""
    if getattr(config, "mixed_precision", "none") == "none":
        return model
    from keras_sdd.study.assemble import build_student

    plain = build_student(config.replace(mixed_precision="none"), input_shape, num_classes)
    weights = model.get_weights()
    if [w.shape for w in plain.get_weights()] != [w.shape for w in weights]:
        raise ConfigError(f"the {config.model} model rebuilt in float32 does not match the study's "
                          f"{config.mixed_precision} model; it cannot be exported")
    plain.set_weights(weights)
    return plain


def raw_inputs(split) -> np.ndarray:
    """A split's stored inputs as the float32 array a deployable model takes."""
    return np.asarray(split.x, dtype=np.float32)


def representative_inputs(bundle, seed: int, size: int) -> np.ndarray:
    """``size`` training examples (raw, float32) drawn without replacement on the study's own seed stream
    ``export_calibration``: the calibration set of int8 quantization, the same on every export of the study."""
    from keras_sdd import seeds

    n = len(bundle.train)
    if n == 0:
        raise ConfigError("the study's training split is empty: int8 quantization needs examples to calibrate on")
    idx = np.sort(seeds.rng(seed, "export_calibration").choice(n, size=min(int(size), n), replace=False))
    return raw_inputs(bundle.train)[idx]


def layer_named_in(model, text: str, scopes: Sequence[str] = ()) -> Tuple[str, str]:
    """(name, class) of the layer an error blames; ('', '') if it names none. ``scopes``: the name scopes of the
    failing op, outermost first (converter errors: 'model/dense1/MatMul'): the innermost layer among them wins;
    else the longest layer or class name in ``text`` (Keras errors name classes: "Unknown layer: 'Foo'")."""
    layers = [layer for layer in all_layers(model) if not isinstance(layer, tf_keras.Model)]
    by_name = {layer.name: layer for layer in layers}
    for scope in reversed(list(scopes)):
        if scope in by_name:
            return scope, type(by_name[scope]).__name__
    best = ("", "")
    for layer in layers:
        for token in (layer.name, type(layer).__name__):
            if token and token in text and len(token) > len(best[0]):
                best = (layer.name, type(layer).__name__)
    return best
