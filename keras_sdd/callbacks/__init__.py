"""Keras callbacks for users' own training code on tfmot ``prune_low_magnitude``-wrapped models."""
import keras_sdd  # noqa: F401  (pins Keras 2 before TensorFlow loads)

from keras_sdd.callbacks.pruning import IterativeMagnitudePruning
from keras_sdd.callbacks.sparsity import SparsityLogger

__all__ = ["IterativeMagnitudePruning", "SparsityLogger"]
