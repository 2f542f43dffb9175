"""A loaded dataset: its splits in memory plus reproducible tf.data pipelines over them.

``train_dataset`` makes epoch ``e`` (order and augmentation) a pure function of ``(seed, e)``, so a study that
resumes at epoch ``e0`` sees exactly the batches an uninterrupted run would have seen.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

from keras_sdd.data import augment as aug
from keras_sdd.errors import ConfigError

SPLITS = ("train", "val", "test")
LABELS = ("noisy", "clean")


@dataclass(frozen=True)
class DatasetInfo:
    """What a study records about its data: sizes, classes, and requested vs measured label noise."""
    name: str
    num_classes: int
    input_shape: tuple
    class_names: tuple
    train_size: int
    val_size: int
    test_size: int
    noise_type: str
    noise_rate: float
    train_noise_rate: float
    extras: Dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_dict(self) -> dict:
        """JSON-able dict (tuples become lists)."""
        d = asdict(self)
        d["input_shape"] = [int(s) for s in self.input_shape]
        d["class_names"] = [str(c) for c in self.class_names]
        d["extras"] = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.extras.items()}
        return d


@dataclass(frozen=True, eq=False)
class Split:
    """One split: raw inputs, training labels ``y`` (noisy where noise applies) and true labels."""
    x: np.ndarray
    y: np.ndarray
    y_clean: np.ndarray

    @property
    def is_noisy(self) -> np.ndarray:
        return self.y != self.y_clean

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class InGraphBatches:
    """``plan(element)``: the epoch plan of an element of ``DataBundle.train_executions``, made once per call;
    ``batch(plan, step)``: that epoch's batch ``step``, equal to the one ``train_dataset`` yields."""
    plan: Callable[[Dict[str, Any]], Dict[str, Any]]
    batch: Callable[[Dict[str, Any], Any], Any]


def _int64_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    return int(seed) % (2 ** 63)


class DataBundle:
    """Splits in memory (``train``, ``val`` or None, ``test``) and the pipelines a trainer needs.

    ``mean``/``std``: per-channel (images, on the [0,1] scale) or per-feature normalisation; None: images are
    only scaled to [0, 1], features left as they are. ``bayes_proba``: Bayes-optimal P(y|x) of every test
    point, where the data are synthetic (else None)."""

    def __init__(self, info: DatasetInfo, train: Split, val: Optional[Split], test: Split, *,
                 bayes_proba: Optional[np.ndarray] = None, augment: str = "none",
                 mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None):
        if augment not in aug.AUGMENTATIONS:
            raise ConfigError(f"unknown augment {augment!r}; valid choices: {', '.join(aug.AUGMENTATIONS)}")
        self.info, self.train, self.val, self.test = info, train, val, test
        self.bayes_proba = bayes_proba
        self.augment = augment
        self.images = train.x.dtype == np.uint8 and train.x.ndim == 4
        if augment != "none" and not self.images:
            raise ConfigError(f"augment={augment!r} needs images; {info.name} has feature vectors, use 'none'")
        if augment == "randaugment" and train.x.shape[-1] not in (1, 3):
            raise ConfigError(f"augment='randaugment' needs grey or RGB images; {info.name} has "
                              f"{train.x.shape[-1]} channels, use 'standard'")
        self.mean = None if mean is None else np.asarray(mean, np.float32)
        self.std = None if std is None else np.asarray(std, np.float32)
        self._tensors: Dict[str, tf.Tensor] = {}

    # ------------------------------------------------------------ plain access
    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise ConfigError(f"unknown split {name!r}; valid choices: {', '.join(SPLITS)}")
        s = getattr(self, name)
        if s is None:
            raise ConfigError(f"{self.info.name} has no validation split (val_fraction was 0)")
        return s

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(len(self.train) / int(batch_size))

    def __repr__(self) -> str:
        i = self.info
        return (f"DataBundle({i.name}: train {i.train_size}, val {i.val_size}, test {i.test_size}, "
                f"{i.num_classes} classes, noise {i.noise_type} {i.noise_rate} -> {i.train_noise_rate:.4f}, "
                f"augment {self.augment})")

    # ------------------------------------------------------------ tensors and normalisation
    def _tensor(self, split: str, what: str) -> tf.Tensor:
        """The split's array as a host-memory constant, made once (the pipelines gather from it)."""
        key = f"{split}.{what}"
        if key not in self._tensors:
            with tf.device("/CPU:0"):
                self._tensors[key] = tf.constant(getattr(self.split(split), what))
        return self._tensors[key]

    def raw_inputs(self, split: str) -> tf.Tensor:
        """The split's stored inputs (before ``normalize``) as a host-memory tensor, made once."""
        return self._tensor(split, "x")

    def normalize(self, x: tf.Tensor) -> tf.Tensor:
        """Raw batch -> float32 model input (images: /255 then (x-mean)/std; features: (x-mean)/std)."""
        x = tf.cast(x, tf.float32)
        if self.images:
            x = x * (1.0 / 255.0)
        if self.mean is not None:
            x = (x - tf.constant(self.mean)) * tf.constant(1.0 / self.std)
        return x

    # ------------------------------------------------------------ fixed-order pipelines
    def _index_batches(self, split: str, batch_size: int) -> tf.data.Dataset:
        n = len(self.split(split))
        return tf.data.Dataset.range(n).batch(int(batch_size))

    def inputs_dataset(self, split: str, batch_size: int) -> tf.data.Dataset:
        """Normalised inputs only, in stored order, no augmentation (for ``model.predict``)."""
        x = self._tensor(split, "x")
        return (self._index_batches(split, batch_size)
                .map(lambda i: self.normalize(tf.gather(x, i)), num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)
                .prefetch(tf.data.AUTOTUNE))

    def eval_dataset(self, split: str, batch_size: int, labels: str = "noisy") -> tf.data.Dataset:
        """(x, y) in stored order; ``labels`` 'noisy' (the training labels) or 'clean'."""
        if labels not in LABELS:
            raise ConfigError(f"unknown labels {labels!r}; valid choices: {', '.join(LABELS)}")
        x = self._tensor(split, "x")
        y = self._tensor(split, "y" if labels == "noisy" else "y_clean")
        return (self._index_batches(split, batch_size)
                .map(lambda i: (self.normalize(tf.gather(x, i)), tf.gather(y, i)),
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .prefetch(tf.data.AUTOTUNE))

    # ------------------------------------------------------------ the training stream
    def _epoch_plan(self, seed, e):
        """Epoch ``e``'s visiting plan, ``{name: per-example tensor in visiting order}``: the example indices
        ("idx") and, when augmenting, their crop offsets and flips ("offsets", "flips") and RandAugment keys
        ("keys"). ``seed`` and ``e`` may be tensors."""
        n = len(self.train)
        key = aug.epoch_key(seed, e)
        order = aug.epoch_order(key, n)
        parts = {"idx": order}
        if self.augment in ("standard", "randaugment"):
            offsets, flips = aug.crop_flip_params(key, n)
            parts["offsets"], parts["flips"] = tf.gather(offsets, order), tf.gather(flips, order)
        if self.augment == "randaugment":
            parts["keys"] = tf.gather(aug.example_keys(key, n), order)
        return parts

    def _batch_loader(self, targets_extra: Optional[np.ndarray]):
        """``{name: a batch's slice of the epoch plan} -> (x, y_noisy)`` (or ``(x, (y_noisy, extra))``)."""
        n = len(self.train)
        crop = self.augment in ("standard", "randaugment")
        x, y = self._tensor("train", "x"), self._tensor("train", "y")
        extra = None
        if targets_extra is not None:
            if len(targets_extra) != n:
                raise ConfigError(f"targets_extra has {len(targets_extra)} rows but the training split has {n}")
            with tf.device("/CPU:0"):
                extra = tf.constant(np.asarray(targets_extra))
        augmenter = aug.get_randaugmenter() if self.augment == "randaugment" else None

        def load(p):
            xb = tf.gather(x, p["idx"])
            if crop:
                xb = aug.crop_flip(xb, p["offsets"], p["flips"])
            if augmenter is not None:
                xb = augmenter(xb, p["keys"])
            if extra is not None:
                return self.normalize(xb), (tf.gather(y, p["idx"]), tf.gather(extra, p["idx"]))
            return self.normalize(xb), tf.gather(y, p["idx"])
        return load

    def _check_stream(self, batch_size, initial_epoch: int, epochs: Optional[int]) -> int:
        b = int(batch_size)
        if b < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if initial_epoch < 0 or (epochs is not None and epochs < initial_epoch):
            raise ConfigError(f"need 0 <= initial_epoch <= epochs, got {initial_epoch} and {epochs}")
        return b

    def train_dataset(self, batch_size: int, *, seed: int, initial_epoch: int = 0,
                      epochs: Optional[int] = None, targets_extra: Optional[np.ndarray] = None) -> tf.data.Dataset:
        """Batches (x, y_noisy) of epochs ``initial_epoch .. epochs-1`` (endless if ``epochs`` is None).

        Epoch ``e`` visits the training set in a permutation drawn from ``(seed, e)`` and augments example
        ``i`` with randomness drawn from ``(seed, e, i)``; its last batch may be partial. ``targets_extra``: an
        array aligned with the training split (e.g. cached teacher logits), gathered with the same indices, so
        batches become ``(x, (y_noisy, extra))``."""
        b = self._check_stream(batch_size, initial_epoch, epochs)
        seed, load = _int64_seed(seed), self._batch_loader(targets_extra)
        epochs_ds = (tf.data.Dataset.range(initial_epoch, epochs) if epochs is not None
                     else tf.data.Dataset.counter(initial_epoch))
        batches = epochs_ds.flat_map(
            lambda e: tf.data.Dataset.from_tensor_slices(self._epoch_plan(seed, e)).batch(b))
        return (batches.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .prefetch(tf.data.AUTOTUNE))

    def train_executions(self, batch_size: int, steps_per_execution: int, *, seed: int, initial_epoch: int = 0,
                         epochs: int) -> tf.data.Dataset:
        """The stream of ``train_dataset`` with the batches left to ``in_graph_batches``: one element per compiled
        call of ``steps_per_execution`` steps (the last of an epoch may be shorter, as Keras runs it), holding
        the stream's seed, the epoch, the call's first step within the epoch and its number of steps ("seed",
        "epoch", "start", "length"; int64 scalars).

        A table, not a pipeline: no function to trace per round, no background thread, no autotuning (deleting
        an autotuned iterator waits for its tuning thread: about 0.9 s at the end of every fit on 2 cores)."""
        b = self._check_stream(batch_size, initial_epoch, epochs)
        k = int(steps_per_execution)
        if k < 1:
            raise ConfigError(f"steps_per_execution must be >= 1, got {steps_per_execution}")
        steps = self.steps_per_epoch(b)
        starts = np.arange(0, steps, k, dtype=np.int64)
        epoch = np.repeat(np.arange(initial_epoch, epochs, dtype=np.int64), len(starts))
        table = {"seed": np.full(len(epoch), _int64_seed(seed), np.int64), "epoch": epoch,
                 "start": np.tile(starts, epochs - initial_epoch),
                 "length": np.tile(np.minimum(k, steps - starts), epochs - initial_epoch)}
        options = tf.data.Options()
        options.autotune.enabled = False
        # Endless (the table repeats; fit stops after its epochs): a stream of known length equal to
        # steps_per_epoch would make Keras restart it every epoch.
        return tf.data.Dataset.from_tensor_slices(table).repeat().with_options(options)

    def in_graph_batches(self, batch_size: int, targets_extra: Optional[np.ndarray] = None) -> "InGraphBatches":
        """What a train function needs to build, from an element of ``train_executions``, the batches that
        ``train_dataset`` yields (see ``keras_sdd.training.in_graph_train``)."""
        b, n, load = int(batch_size), len(self.train), self._batch_loader(targets_extra)

        def batch(plan, step):
            step = tf.cast(step, tf.int64)
            lo, hi = step * b, tf.minimum((step + 1) * b, n)
            return load({name: v[lo:hi] for name, v in plan.items()})
        return InGraphBatches(lambda element: self._epoch_plan(element["seed"], element["epoch"]), batch)
