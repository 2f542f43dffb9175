"""The model zoo: functional tf_keras models that output logits, built by name and prunable by tfmot.

``build(name, input_shape, num_classes, width=, depth=, hidden=, seed=, **options)`` builds a registered model
(``MODELS.names()``: fcn, lenet300_100, vgg_like, resnet18, resnet_small, vit); ``validate`` runs its cheap checks;
``count_params`` / ``prunable_weights`` read a plain or a ``prune_low_magnitude``-wrapped model alike. Every
prunable kernel belongs to a top-level Dense/Conv layer, so wrapping only those layers prunes all of them.
``CUSTOM_OBJECTS`` are the ViT's own layers, for loading legacy HDF5 saves.
"""
import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)

from keras_sdd.models.registry import MODELS, ModelSpec, build, validate
from keras_sdd.models.params import (ParamCount, count_nonzero, count_nonzero_weights, count_params,
                                     prunable_weights)
from keras_sdd.models import fcn, resnet, vgg_like, vit  # noqa: F401,E402  (register the models)
from keras_sdd.models.vit import CUSTOM_OBJECTS

__all__ = ["CUSTOM_OBJECTS", "MODELS", "ModelSpec", "ParamCount", "build", "count_nonzero", "count_nonzero_weights",
           "count_params", "prunable_weights", "validate"]
