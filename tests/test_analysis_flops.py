"""Sparsity-aware FLOPs: known layers at known densities, and every zoo model (dense) against tf.profiler."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from keras_sdd import models
from keras_sdd.analysis import flops
from keras_sdd.pruning import tfmot_bridge


def profiler_flops(model) -> int:
    spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
    frozen = convert_variables_to_constants_v2(tf.function(lambda x: model(x, training=False))
                                               .get_concrete_function(spec))
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=frozen.graph, options=opts).total_float_ops


def test_known_layers_at_known_densities():
    x = tf_keras.Input((8, 8, 3))
    y = tf_keras.layers.Conv2D(4, 3, padding="same", name="conv")(x)            # 2·3·3·3·4·64 + 4·64
    y = tf_keras.layers.BatchNormalization(name="bn")(y)                         # 2·256
    y = tf_keras.layers.ReLU(name="relu")(y)                                     # 256
    y = tf_keras.layers.GlobalAveragePooling2D(name="gap")(y)                    # 256
    y = tf_keras.layers.Dense(5, name="logits")(y)                               # 2·4·5 + 5
    model = tf_keras.Model(x, y)
    report = flops.forward_flops(model, {"conv": 0.25, "logits": 0.5})
    assert report.per_layer == {"conv": 0.25 * 2 * 27 * 256 + 256, "bn": 512.0, "relu": 256.0, "gap": 256.0,
                                "logits": 0.5 * 40 + 5}
    assert report.dense_total == 2 * 27 * 256 + 256 + 512 + 256 + 256 + 45
    assert flops.training_flops(model, examples=10, epochs=2, densities={}) == 3 * report.dense_total * 20


def test_densities_read_from_the_masks():
    plain = models.build("fcn", (10,), 2, width=16, depth=1, seed=0)
    wrapped = tfmot_bridge.wrap(plain)
    tfmot_bridge.prune(wrapped, 0.75)
    dens = flops.densities_of(wrapped)
    report = tfmot_bridge.sparsity_report(wrapped)
    assert dens == {k: 1 - v for k, v in report.per_layer.items()}
    expected = sum(2 * w.size * dens[k.rsplit("/", 1)[0]] for k, w in tfmot_bridge.get_weights(wrapped).items())
    assert flops.inference_flops(wrapped) == pytest.approx(expected + 16 + 2)         # + the biases
    assert flops.forward_flops(wrapped).dense_total == flops.forward_flops(plain).dense_total


@pytest.mark.parametrize("name, shape, kwargs, tolerance", [
    ("fcn", (100,), dict(width=500, depth=1), 0.0),
    ("lenet300_100", (28, 28, 1), {}, 0.0),
    ("vgg_like", (32, 32, 3), dict(width=3, depth=3), 0.02),     # profiler counts BN as 2/elt + MaxPool as 0
    ("resnet_small", (32, 32, 3), {}, 0.01),
    ("resnet18", (32, 32, 3), dict(width=0.125), 0.015),  # the profiler counts no ReLU: thin nets show it
    ("vit", (32, 32, 3), dict(width=64, depth=2, heads=4, mlp_dim=64), 0.03),   # softmax/GELU conventions
])
def test_dense_flops_against_the_profiler(name, shape, kwargs, tolerance):
    model = models.build(name, shape, 10, seed=0, **kwargs)
    ours, theirs = flops.forward_flops(model).dense_total, profiler_flops(model)
    assert ours == pytest.approx(theirs, rel=tolerance) if tolerance else ours == theirs
