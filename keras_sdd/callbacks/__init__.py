"""Keras callbacks for users' own training code (plain ``model.fit``, nothing else of the package needed).

They hold no global state, reset in ``on_train_begin`` and never import the study configuration.
"""
import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)

from keras_sdd.callbacks.calibration import CalibrationLogger
from keras_sdd.callbacks.cost import TrainingCostLogger
from keras_sdd.callbacks.epoch_scalars import EpochScalars
from keras_sdd.callbacks.progress import EpochProgress
from keras_sdd.callbacks.pruning import IterativeMagnitudePruning
from keras_sdd.callbacks.rewind import RewindCapture
from keras_sdd.callbacks.sparsity import SparsityLogger

__all__ = ["CalibrationLogger", "EpochProgress", "EpochScalars", "IterativeMagnitudePruning", "RewindCapture",
           "SparsityLogger", "TrainingCostLogger"]
