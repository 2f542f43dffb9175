"""Sparsity-aware FLOPs: known layers at known densities (numbers by hand), single layers and every zoo model
(dense) against TensorFlow's profiler, masks read from keras_sdd's and stock tfmot wrappers, nested models."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from keras_sdd import models
from keras_sdd.analysis import flops
from keras_sdd.models.params import unwrap, walk_layers
from keras_sdd.pruning import tfmot_bridge

L = tf_keras.layers


def profiler_flops(model) -> int:
    """tf.profiler's float operations of the model's frozen inference graph at batch 1 (TF 2.x: a concrete
    function, variables folded to constants, profiled with ``ProfileOptionBuilder.float_operation()``)."""
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    specs = [tf.TensorSpec([1, *s[1:]], tf.float32) for s in shapes]
    fn = tf.function(lambda *x: model(list(x) if len(x) > 1 else x[0], training=False))
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function(*specs))
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=frozen.graph, options=opts).total_float_ops


def one_layer(layer, shape):
    x = tf_keras.Input(shape)
    return tf_keras.Model(x, layer(x))


def test_known_layers_at_known_densities():
    x = tf_keras.Input((8, 8, 3))
    y = L.Conv2D(4, 3, padding="same", name="conv")(x)            # 2·3·3·3·4·64 + 4·64 (bias)
    y = L.BatchNormalization(name="bn")(y)                         # 2·256
    y = L.ReLU(name="relu")(y)                                     # 256
    y = L.MaxPooling2D(2, name="pool")(y)                          # 4 per output: 4·64
    y = L.GlobalAveragePooling2D(name="gap")(y)                    # 64 inputs
    y = L.Dense(5, activation="relu", name="logits")(y)            # 2·4·5 + 5 (bias) + 5 (relu)
    model = tf_keras.Model(x, y)
    report = flops.forward_flops(model, {"conv": 0.25, "logits": 0.5})
    assert report.per_layer == {"conv": 0.25 * 2 * 27 * 256 + 256, "bn": 512.0, "relu": 256.0, "pool": 256.0,
                                "gap": 64.0, "logits": 0.5 * 40 + 10}
    assert report.dense_total == 2 * 27 * 256 + 256 + 512 + 256 + 256 + 64 + 50
    assert report.prunable_dense == 2 * 27 * 256 + 40
    assert report.total == sum(report.per_layer.values())
    assert flops.training_flops(model, examples=10, epochs=2, densities={}) == 3 * report.dense_total * 20
    assert flops.inference_flops(model, {"conv": 0.0, "logits": 0.0}) == report.dense_total - report.prunable_dense
    with pytest.raises(ValueError, match="does not have"):
        flops.forward_flops(model, {"conv/kernel": 0.5})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        flops.forward_flops(model, {"conv": 1.5})


def test_attention_einsum_grouped_and_activations_by_hand():
    q, kv = tf_keras.Input((10, 16)), tf_keras.Input((7, 12))
    mha = L.MultiHeadAttention(4, 8, value_dim=5, output_shape=9, name="mha")
    y = mha(q, kv)                                                          # cross-attention, Tq 10, Tk 7
    y = L.EinsumDense("abc,cd->abd", output_shape=(None, 6), bias_axes="d", name="einsum")(y)
    y = L.Dense(3, activation="gelu", name="gelu_dense")(y)
    model = tf_keras.Model([q, kv], y)
    r = flops.forward_flops(model, {"mha": 0.5})
    proj = 2 * (10 * 16 * 32 + 7 * 12 * 32 + 7 * 12 * 20 + 10 * 20 * 9)   # q, k, v, output projections
    core = 2 * 4 * 10 * 7 * 8 + 2 * 4 * 10 * 7 * 5 + 10 * 32 + 5 * 4 * 10 * 7   # QK^T, AV, 1/sqrt(d), softmax
    bias = 10 * 32 + 7 * 32 + 7 * 20 + 10 * 9
    assert r.per_layer["mha"] == 0.5 * proj + core + bias
    assert r.per_layer["einsum"] == 2 * 10 * 9 * 6 + 10 * 6
    assert r.per_layer["gelu_dense"] == 2 * 10 * 6 * 3 + 10 * 3 + 4 * 10 * 3   # + bias + GELU (4 per element)
    # grouped convolution: each output sees c_in / groups channels
    grouped = one_layer(L.Conv2D(8, 3, groups=2, use_bias=False, name="g"), (6, 6, 4))
    assert flops.forward_flops(grouped).per_layer == {"g": 2 * 3 * 3 * 2 * (4 * 4 * 8)}


@pytest.mark.parametrize("layer, shape", [
    (L.DepthwiseConv2D(3, depth_multiplier=2, padding="same"), (8, 8, 4)),
    (L.SeparableConv2D(6, 3, padding="same"), (8, 8, 4)),
    (L.Conv1D(6, 3), (10, 4)),
    (L.Conv2DTranspose(6, 3, strides=2, padding="same"), (4, 4, 4)),
    (L.AveragePooling2D(3, strides=1), (6, 6, 2)),                  # overlapping windows: 9 per output
    (L.Softmax(), (10, 16)),
    (L.GlobalAveragePooling1D(), (10, 4)),
    (L.LayerNormalization(epsilon=1e-3), (10, 16)),                # fused kernel: the profiler sees 2 / element
])
def test_single_layers_against_the_profiler(layer, shape):
    model = one_layer(layer, shape)
    ours = flops.forward_flops(model).dense_total
    if isinstance(layer, L.LayerNormalization):   # ours 7 / element; the fused kernel's FusedBatchNormV3 counts 0
        ours -= 5 * 160
    assert ours == profiler_flops(model)


def test_multi_head_attention_against_the_profiler():
    """tf_keras' MultiHeadAttention computes its projections and QKᵀ / AV with Einsum, which the profiler does not
    count (no flops statistics registered); the rest (biases, 1/√d scaling, softmax) must agree."""
    x = tf_keras.Input((10, 16))
    model = tf_keras.Model(x, L.MultiHeadAttention(4, 8)(x, x))
    proj, other = flops.layer_flops(model.layers[-1])
    assert proj == 2 * 4 * 10 * 16 * 32
    assert other - 2 * 4 * 10 * 10 * (8 + 8) == profiler_flops(model)


def _convention_delta(model) -> float:
    """Where our conventions and the profiler's differ by design: it counts no ReLU (no statistics registered for
    Relu), no FusedBatchNormV3 (BatchNorm at inference: we count 2 per element), and TF's unfused LayerNorm
    (epsilon < 1.001e-5, as keras_sdd's ViT) as 9 per element + 3 per row (moments, then batch_normalization's
    formula) where we count 7 per element."""
    delta = 0.0
    for _, outer in walk_layers(model):
        inner = unwrap(outer)
        n = int(np.prod(outer.output_shape[1:]))
        if isinstance(inner, (L.BatchNormalization, L.ReLU)):
            delta += flops.layer_flops(outer)[1]
        elif getattr(inner, "activation", None) is tf_keras.activations.relu and not isinstance(inner, L.Activation):
            delta += n
        elif isinstance(inner, L.LayerNormalization):
            delta += 7 * n - (9 * n + 3 * n // outer.output_shape[-1])
    return delta


ZOO = [
    ("fcn", (100,), dict(width=500, depth=1)),
    ("lenet300_100", (28, 28, 1), {}),
    ("vgg_like", (32, 32, 3), dict(width=3, depth=3)),
    ("resnet_small", (32, 32, 3), {}),
    ("resnet18", (32, 32, 3), dict(width=0.25)),
    ("vit", (32, 32, 3), dict(width=64, depth=2, heads=4, mlp_dim=64)),   # patch 4: 64 patches + class token
]


@pytest.mark.parametrize("name, shape, kwargs", ZOO, ids=[z[0] for z in ZOO])
def test_zoo_dense_flops_against_the_profiler(name, shape, kwargs):
    model = models.build(name, shape, 10, seed=0, **kwargs)
    ours, theirs = flops.forward_flops(model).dense_total, profiler_flops(model)
    assert ours - _convention_delta(model) == theirs        # exact once the stated conventions are accounted for
    assert ours == pytest.approx(theirs, rel=0.02)          # and the conventions are minor terms


@pytest.mark.slow
@pytest.mark.parametrize("name, kwargs", [("resnet18", {}), ("vit", {})])
def test_full_size_models_against_the_profiler(name, kwargs):
    model = models.build(name, (32, 32, 3), 10, seed=0, **kwargs)
    ours, theirs = flops.forward_flops(model).dense_total, profiler_flops(model)
    assert ours - _convention_delta(model) == theirs


def _expected_sparse(model, densities):
    dense = flops.forward_flops(model, {})
    return sum(flops.layer_flops(layer)[0] * densities.get(key, 1.0) + flops.layer_flops(layer)[1]
               for key, layer in walk_layers(model) if key in dense.per_layer)


def test_densities_read_from_keras_sdd_masks():
    plain = models.build("fcn", (10,), 2, width=16, depth=1, seed=0)
    wrapped = tfmot_bridge.wrap(plain)
    tfmot_bridge.prune(wrapped, 0.75)
    dens = flops.densities_of(wrapped)
    assert dens == {k: 1 - v for k, v in tfmot_bridge.sparsity_report(wrapped).per_layer.items()}
    assert 0 < min(dens.values()) < 1
    expected = sum(2 * w.size * dens[k.rsplit("/", 1)[0]] for k, w in tfmot_bridge.get_weights(wrapped).items())
    assert flops.inference_flops(wrapped) == pytest.approx(expected + 2 * 16 + 2)   # + biases, + the hidden ReLU
    assert flops.forward_flops(wrapped).dense_total == flops.forward_flops(plain).dense_total
    assert flops.densities_of(plain) == {} and flops.inference_flops(plain) == flops.forward_flops(plain).dense_total


def test_stock_prune_low_magnitude_and_nested_models():
    inner = models.build("fcn", (10,), 3, width=16, depth=1, seed=0)
    x = tf_keras.Input((10,))
    h = L.Dense(10, name="pre")(x)
    nested = tf_keras.Model(x, L.Softmax(name="probs")(inner(h)))
    plain_total = flops.forward_flops(nested).dense_total
    assert plain_total == flops.forward_flops(inner).dense_total + 2 * 100 + 10 + 5 * 3
    assert set(flops.forward_flops(nested).per_layer) >= {"pre", "probs"} | {f"{inner.name}/{k}" for k in
                                                                               flops.forward_flops(inner).per_layer}
    pruned = tfmot.sparsity.keras.prune_low_magnitude(models.build("fcn", (10,), 3, width=16, depth=1, seed=1))
    for wrapper in tfmot_bridge.wrappers(pruned):
        for _, mask, _ in wrapper.pruning_vars:
            m = np.ones(mask.shape, np.float32)
            m.reshape(-1)[: m.size // 4] = 0.0               # a quarter of every kernel pruned
            mask.assign(m)
    dens = flops.densities_of(pruned)
    assert dens and all(d == pytest.approx(0.75, abs=0.02) for d in dens.values())
    assert flops.inference_flops(pruned) == pytest.approx(_expected_sparse(pruned, dens))
    assert flops.forward_flops(pruned).dense_total == flops.forward_flops(inner).dense_total


def test_shared_layers_count_every_call_and_subclassed_models_are_refused():
    x1, x2 = tf_keras.Input((4,)), tf_keras.Input((4,))
    shared = L.Dense(3, use_bias=False, name="shared")
    model = tf_keras.Model([x1, x2], L.Add(name="add")([shared(x1), shared(x2)]))
    assert flops.forward_flops(model).per_layer == {"shared": 2 * 2 * 4 * 3, "add": 3.0}

    class Sub(tf_keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    sub = Sub()
    sub(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="functional or Sequential"):
        flops.forward_flops(sub)
