"""Training-time image augmentation whose randomness is a pure function of (seed, epoch, example).

Every random draw comes from stateless ops keyed by ``(seed, epoch)`` and the example's index, so an epoch's
augmentation can be recomputed exactly when a study resumes. 'standard': zero-pad 4 pixels and crop back to
the original size at a random offset, then flip horizontally with probability 1/2 (the CIFAR recipe, for any
image size). 'randaugment': 'standard' followed by keras_cv's RandAugment, made stateless per example (keras_cv is
imported only when RandAugment is first built).
"""
from __future__ import annotations

from typing import Optional

import keras_sdd.legacy_keras  # noqa: F401  (keras_cv picks its Keras when first imported: Keras 2 here)

import tensorflow as tf

from keras_sdd.errors import ConfigError

AUGMENTATIONS = ("none", "standard", "randaugment")
PAD = 4
ALG = "philox"  # fixed algorithm: the same numbers on every device


def epoch_key(seed, epoch) -> tf.Tensor:
    """The stateless seed of one epoch, shape [2] int64."""
    return tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])


def subkey(key: tf.Tensor, tag: int) -> tf.Tensor:
    """An independent stateless seed for one use (order, crop/flip, RandAugment) of an epoch key."""
    return tf.random.experimental.stateless_fold_in(key, tag, alg=ALG)


def epoch_order(key: tf.Tensor, n: int) -> tf.Tensor:
    """The epoch's visiting order: a permutation of ``range(n)`` (int64)."""
    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=subkey(key, 0), alg=ALG)


def crop_flip_params(key: tf.Tensor, n: int):
    """Per example index: crop offsets (n, 2) int32 in [0, 2*PAD] and flip flags (n,) bool."""
    k = subkey(key, 1)
    offsets = tf.random.stateless_uniform([n, 2], seed=k, minval=0, maxval=2 * PAD + 1, dtype=tf.int32, alg=ALG)
    flips = tf.random.stateless_uniform([n], seed=subkey(k, 1), alg=ALG) < 0.5
    return offsets, flips


def example_keys(key: tf.Tensor, n: int) -> tf.Tensor:
    """Per example index: a stateless seed (n, 2) int64 for RandAugment."""
    return tf.random.stateless_uniform([n, 2], seed=subkey(key, 2), minval=None, maxval=None, dtype=tf.int64,
                                       alg=ALG)


def crop_flip(images: tf.Tensor, offsets: tf.Tensor, flips: tf.Tensor) -> tf.Tensor:
    """Pad-4 random crop and horizontal flip of a batch (B, H, W, C), vectorised as two gathers (the flip
    is folded into the column indices)."""
    h, w = tf.shape(images)[1], tf.shape(images)[2]
    padded = tf.pad(images, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]])
    rows = offsets[:, :1] + tf.range(h)[None, :]
    cols = tf.where(flips[:, None], tf.range(w - 1, -1, -1)[None, :], tf.range(w)[None, :])
    cols = offsets[:, 1:] + cols
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


class RandAugmenter:
    """keras_cv RandAugment made stateless: every random generator and factor sampler inside the layer is
    replaced by draws from stateless ops keyed by the current image's key and the draw's place in the graph.

    The traced function is pure, so it runs in parallel maps and the same (image, key) always gives the same
    output. It is traced once per process (tracing RandAugment takes seconds); ``get_randaugmenter`` caches
    instances."""

    def __init__(self, **layer_kwargs):
        from keras_sdd.legacy_keras import require

        require("augment='randaugment' (keras_cv on Keras 2)")  # keras_cv picks the Keras tf.keras resolved to
        import keras_cv  # lazy: heavy import, only needed for this augmentation
        from keras_cv.src.backend import config as cv_config

        if cv_config.keras_3():  # its Keras 3 layers draw randomness differently: no stateless rewiring
            from keras_sdd.legacy_keras import FIX

            raise ConfigError("augment='randaugment' needs keras_cv on Keras 2 (tf_keras; keras_cv picks its Keras "
                              f"when first imported): {FIX}")
        self.layer = keras_cv.layers.RandAugment(**{"value_range": (0, 255), "seed": 0, **layer_kwargs})
        self._key: Optional[tf.Tensor] = None
        self._count = 0
        self._rewired = 0
        self._rewire(self.layer, keras_cv.core, set())
        if self._rewired < 2:
            raise ConfigError("keras_cv's RandAugment no longer draws randomness where keras_sdd expects; "
                              "augment='randaugment' cannot be made reproducible with this keras_cv version")
        self._fn = tf.function(self._batch, reduce_retracing=True)

    def _rewire(self, obj, core, seen) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if hasattr(obj, "_random_generator"):
            obj._random_generator = _StatelessDraws(self)  # noqa: SLF001
            self._rewired += 1
        for name, value in list(vars(obj).items()):
            if isinstance(value, (core.UniformFactorSampler, core.NormalFactorSampler)):
                setattr(obj, name, _DrawSampler(value, _StatelessDraws(self), core))
        for value in list(vars(obj).values()):
            for child in (value if isinstance(value, (list, tuple)) else [value]):
                if hasattr(child, "_random_generator") and hasattr(child, "call"):
                    self._rewire(child, core, seen)

    def next_seed(self) -> tf.Tensor:
        """The seed of the next draw traced for the current image."""
        if self._key is None:
            raise RuntimeError("RandAugmenter draws outside an augmentation call")
        self._count += 1
        return subkey(self._key, self._count)

    def _one(self, image: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
        self._key, self._count = key, 0
        try:
            return tf.cast(self.layer(image), tf.float32)
        finally:
            self._key = None

    def _batch(self, images: tf.Tensor, keys: tf.Tensor) -> tf.Tensor:
        return tf.map_fn(lambda a: self._one(a[0], a[1]), (images, keys), fn_output_signature=tf.float32)

    def __call__(self, images: tf.Tensor, keys: tf.Tensor) -> tf.Tensor:
        """Augment float images (B, H, W, C), C = 1 or 3, in [0, 255], one stateless key (B, 2) int64 per
        image."""
        images = tf.cast(images, tf.float32)
        if images.shape[-1] == 1:  # the colour ops need RGB: run grey images as RGB, then average back
            return tf.reduce_mean(self._fn(tf.tile(images, [1, 1, 1, 3]), tf.cast(keys, tf.int64)), axis=-1,
                                  keepdims=True)
        if images.shape[-1] != 3:
            raise ValueError(f"RandAugment needs 1 or 3 channels, got images of shape {images.shape}")
        return self._fn(images, tf.cast(keys, tf.int64))


_RANDAUGMENTERS = {}


def get_randaugmenter(**layer_kwargs) -> RandAugmenter:
    """A shared RandAugmenter per setting, so its (slow) tracing happens once per process."""
    key = tuple(sorted(layer_kwargs.items()))
    if key not in _RANDAUGMENTERS:
        _RANDAUGMENTERS[key] = RandAugmenter(**layer_kwargs)
    return _RANDAUGMENTERS[key]


class _StatelessDraws:
    """Stands in for a keras_cv layer's ``tf.random.Generator`` (which is stateful and not resumable)."""

    def __init__(self, owner: RandAugmenter):
        self.owner = owner

    def uniform(self, shape, minval=0, maxval=None, dtype=tf.float32, name=None):
        if maxval is None and dtype.is_floating:
            maxval = 1
        return tf.random.stateless_uniform(shape, seed=self.owner.next_seed(), minval=minval, maxval=maxval,
                                           dtype=dtype, alg=ALG)

    def normal(self, shape, mean=0.0, stddev=1.0, dtype=tf.float32, name=None):
        return tf.random.stateless_normal(shape, seed=self.owner.next_seed(), mean=mean, stddev=stddev,
                                          dtype=dtype, alg=ALG)


class _DrawSampler:
    """A keras_cv factor sampler drawing from ``_StatelessDraws`` instead of TensorFlow's global state."""

    def __init__(self, inner, draws: _StatelessDraws, core):
        self.inner, self.draws, self._uniform = inner, draws, isinstance(inner, core.UniformFactorSampler)

    def __call__(self, shape=(), dtype="float32"):
        i, dtype = self.inner, tf.as_dtype(dtype)
        if self._uniform:
            return self.draws.uniform(shape, i.lower, i.upper, dtype=dtype)
        return tf.clip_by_value(self.draws.normal(shape, i.mean, i.stddev, dtype=dtype), i.min_value, i.max_value)

    def get_config(self):
        return self.inner.get_config()
