"""The model registry and its front door: ``build`` and ``validate`` by name.

Each architecture module registers a :class:`ModelSpec` (how to turn width/depth/hidden/options into a full
configuration, how to check that configuration against an input shape, and how to build it). ``validate`` runs
only the cheap checks, so a study can refuse a bad config before loading data; ``build`` always validates first.
:class:`Seeds` gives every layer its own initializer seed derived from the model seed and the layer's name, so
the same seed gives the same weights whatever the global random state, and adding a layer does not reshuffle the
others.
"""
from __future__ import annotations

import numbers
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)
import tf_keras

from keras_sdd.errors import ConfigError
from keras_sdd.registry import Registry

Shape = Tuple[int, ...]


@dataclass(frozen=True)
class ModelSpec:
    """How one registered model is configured, checked and built.

    ``resolve(width, depth, hidden, options) -> config`` fills defaults and raises ConfigError on bad values;
    ``check_input(config, input_shape)`` raises ConfigError when the input cannot be used;
    ``make(input_shape, num_classes, seeds, config) -> tf_keras.Model`` builds it.
    """

    name: str
    resolve: Callable[[Any, Any, Any, Dict[str, Any]], Dict[str, Any]]
    make: Callable[[Shape, int, "Seeds", Dict[str, Any]], tf_keras.Model]
    check_input: Callable[[Dict[str, Any], Shape], None] = lambda config, input_shape: None


MODELS: Registry[ModelSpec] = Registry("model")


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to :data:`MODELS` under its name."""
    return MODELS.register(spec.name)(spec)


def validate(name: str, *, width=None, depth=None, hidden=None, input_shape=None, num_classes=None,
             **options) -> None:
    """Cheap checks of a model configuration; raises ConfigError naming the valid choices or ranges.

    ``input_shape`` / ``num_classes`` are optional here: given, they are checked too (e.g. ViT patch size).
    """
    _resolve(name, width=width, depth=depth, hidden=hidden, input_shape=input_shape, num_classes=num_classes,
             options=options)


def build(name: str, input_shape: Sequence[int], num_classes: int, *, width=None, depth=None, hidden=None,
          seed: Optional[int] = None, **options) -> tf_keras.Model:
    """Build the registered model ``name`` as a functional tf_keras.Model that outputs logits."""
    if input_shape is None:
        raise ConfigError("input_shape is required, e.g. (28, 28, 1) or (32, 32, 3)")
    if num_classes is None:
        raise ConfigError("num_classes is required (a positive int)")
    spec, config, shape = _resolve(name, width=width, depth=depth, hidden=hidden, input_shape=input_shape,
                                   num_classes=num_classes, options=options)
    return spec.make(shape, int(num_classes), Seeds(check_seed(seed)), config)


def _resolve(name, *, width, depth, hidden, input_shape, num_classes, options):
    spec = MODELS.get(name)
    config = spec.resolve(width, depth, hidden, dict(options))
    shape = None
    if input_shape is not None:
        shape = check_input_shape(input_shape)
        spec.check_input(config, shape)
    if num_classes is not None:
        positive_int("num_classes", num_classes)
    return spec, config, shape


# ---------------------------------------------------------------------------------------------------------------
# Seeding


def check_seed(seed) -> Optional[int]:
    """``None`` (random initialisation) or a non-negative int."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"seed must be None or an int >= 0, got {seed!r}")
    return int(seed)


class Seeds:
    """Per-layer initializer seeds derived from one model seed (``None``: unseeded, random each build)."""

    def __init__(self, seed: Optional[int]):
        self.seed = seed

    def of(self, name: str) -> Optional[int]:
        """The seed for the layer (or weight) called ``name``; stable across runs and processes."""
        if self.seed is None:
            return None
        return zlib.crc32(f"{self.seed}/{name}".encode()) & 0x7FFFFFFF

    def glorot_uniform(self, name: str):
        return tf_keras.initializers.GlorotUniform(seed=self.of(name))

    def he_normal(self, name: str):
        return tf_keras.initializers.HeNormal(seed=self.of(name))

    def truncated_normal(self, name: str, stddev: float):
        return tf_keras.initializers.TruncatedNormal(stddev=stddev, seed=self.of(name))


# ---------------------------------------------------------------------------------------------------------------
# Checks shared by the architecture modules


def check_input_shape(input_shape) -> Shape:
    """A non-empty sequence of positive ints, without the batch dimension."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise ConfigError(f"input_shape must be a sequence of positive ints without the batch dimension, "
                          f"got {input_shape!r}") from None
    if not shape or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d <= 0 for d in shape):
        raise ConfigError(f"input_shape must be a non-empty sequence of positive ints without the batch "
                          f"dimension, got {input_shape!r}")
    return tuple(int(d) for d in shape)


def require_image(model: str, input_shape: Shape) -> None:
    if len(input_shape) != 3:
        raise ConfigError(f"{model} needs image inputs of shape (height, width, channels), got {input_shape}")


def positive_int(what: str, value, *, maximum: Optional[int] = None) -> int:
    """``value`` as an int in [1, maximum]; ConfigError naming the range otherwise."""
    valid = "an int >= 1" if maximum is None else f"an int in [1, {maximum}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{what} must be {valid}, got {value!r}")
    if value < 1 or (maximum is not None and value > maximum):
        raise ConfigError(f"{what} must be {valid}, got {value!r}")
    return int(value)


def positive_float(what: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ConfigError(f"{what} must be a number > 0, got {value!r}")
    return float(value)


def rate(what: str, value) -> float:
    """A dropout rate in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ConfigError(f"{what} must be a number in [0, 1), got {value!r}")
    return float(value)


def choice(what: str, value, choices: Sequence[Any]):
    if value not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def flag(what: str, value) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{what} must be True or False, got {value!r}")
    return value


def take_options(model: str, options: Mapping[str, Any], defaults: Mapping[str, Any]) -> Dict[str, Any]:
    """``defaults`` updated by ``options``; ConfigError on an option the model does not have."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        valid = ", ".join(sorted(defaults)) or "none"
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} for model {model}; valid options: {valid}")
    return {**defaults, **options}


def refuse(model: str, why: str, **given) -> None:
    """ConfigError when any of ``given`` (e.g. hidden=...) was set for a model that has no such setting."""
    set_ = [k for k, v in given.items() if v is not None]
    if set_:
        raise ConfigError(f"model {model} takes no {'/'.join(set_)}: {why}")
