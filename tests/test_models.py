"""The model zoo: every registered model builds, trains a step, is accepted whole by tfmot's
prune_low_magnitude, counts its parameters exactly (hand-written formulas), and refuses bad configs."""
import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from keras_sdd import ConfigError, models
from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude

NUM_CLASSES = 3
BATCH = 8
#: Masks 50% of every prunable kernel at the first training step (tfmot's step counter is 1 there).
PRUNE_AT_STEP_1 = tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=1, frequency=1)

# Tiny size of every registered model.
CASES = {
    "fcn": dict(input_shape=(4, 4, 1), width=5, depth=2),
    "lenet300_100": dict(input_shape=(28, 28, 1)),
    "vgg_like": dict(input_shape=(4, 4, 3), depth=3, width=1),  # 4 -> 2 -> 1 -> (pool skipped)
    "resnet18": dict(input_shape=(8, 8, 3), width=1 / 32),  # channels 2-4-8-16
    "resnet_small": dict(input_shape=(8, 8, 1), width=0.125),  # channels 8-16
    "vit": dict(input_shape=(8, 8, 3), width=8, depth=1, heads=2, mlp_dim=16),
}


# --- Parameter formulas, written from each architecture's definition: (prunable, total) ------------------------

def fcn_params(n_in, hidden, classes):
    sizes = [n_in, *hidden, classes]
    kernels = sum(a * b for a, b in zip(sizes, sizes[1:]))
    return kernels, kernels + sum(sizes[1:])


def vgg_params(h, w, c_in, depth, gamma, classes, head="flatten"):
    kernels = total = 0
    for b in range(depth):
        c = 2 ** (gamma + b)
        k = 9 * c_in * c + 9 * c * c
        kernels += k
        total += k + 2 * c + 2 * 4 * c  # two conv biases; two BatchNorms (gamma, beta, mean, variance)
        c_in = c
        h, w = (h // 2 if h >= 2 else h), (w // 2 if w >= 2 else w)
    features = h * w * c_in if head == "flatten" else c_in
    return kernels + features * classes, total + features * classes + classes


def resnet_params(c_in, blocks, channels, classes):
    kernels = 9 * c_in * channels[0]  # stem conv (no bias) ...
    total = kernels + 4 * channels[0]  # ... + BatchNorm
    c_prev = channels[0]
    for s, (n, c) in enumerate(zip(blocks, channels)):
        for b in range(n):
            stride = 2 if (s > 0 and b == 0) else 1
            k = 9 * c_prev * c + 9 * c * c
            bn = 2 * 4 * c
            if stride != 1 or c_prev != c:  # projection shortcut: 1x1 conv + BatchNorm
                k += c_prev * c
                bn += 4 * c
            kernels += k
            total += k + bn
            c_prev = c
    return kernels + c_prev * classes, total + c_prev * classes + classes


def vit_params(h, w, c_in, patch, dim, depth, mlp, classes, qkv_bias=False):
    patch_dim, tokens = patch * patch * c_in, (h // patch) * (w // patch)
    kernels = patch_dim * dim + depth * (4 * dim * dim + 2 * dim * mlp) + dim * classes
    biases = dim + depth * ((3 * dim if qkv_bias else 0) + dim + mlp + dim) + classes
    norms = depth * 2 * 2 * dim + 2 * dim
    embeddings = dim + (tokens + 1) * dim  # class token + position embedding
    return kernels, kernels + biases + norms + embeddings


EXPECTED = {
    "fcn": fcn_params(16, (5, 5), NUM_CLASSES),
    "lenet300_100": fcn_params(784, (300, 100), NUM_CLASSES),
    "vgg_like": vgg_params(4, 4, 3, 3, 1, NUM_CLASSES),
    "resnet18": resnet_params(3, (2, 2, 2, 2), (2, 4, 8, 16), NUM_CLASSES),
    "resnet_small": resnet_params(1, (1, 1), (8, 16), NUM_CLASSES),
    "vit": vit_params(8, 8, 3, 4, 8, 1, 16, NUM_CLASSES),
}


def build(name, seed=0):
    return models.build(name, num_classes=NUM_CLASSES, seed=seed, **CASES[name])


def batch(name):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, *CASES[name]["input_shape"])).astype("float32")
    return x, rng.integers(0, NUM_CLASSES, size=BATCH)


def train_step(model, name, callbacks=(), eager=True):
    """One SGD step on a batch of 8. Eager by default: tracing a whole-model-wrapped net takes 10-30 s here."""
    model.compile(optimizer=tf_keras.optimizers.SGD(0.01),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=eager)
    x, y = batch(name)
    history = model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=list(callbacks))
    return history.history["loss"][0]


def kernel_ids(model):
    """ids of every Dense/Conv kernel, found by walking all layers and their sublayers."""
    return {id(layer.kernel) for layer in model.submodules
            if isinstance(layer, (tf_keras.layers.Dense, tf_keras.layers.Conv2D))}


@pytest.fixture(scope="module")
def plain():
    """name -> (model built with seed 0, its initial weights); shared by the tests to keep the file fast
    (training and pruning it later changes values, never shapes or variables)."""
    cache = {}

    def get(name):
        if name not in cache:
            model = build(name, seed=0)
            cache[name] = model, model.get_weights()
        return cache[name]

    return get


def test_registered_names():
    assert models.MODELS.names() == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_builds_logits_with_unique_names(name, plain):
    model, _ = plain(name)
    assert isinstance(model, tf_keras.Model) and model._is_graph_network
    x, _ = batch(name)
    assert model(x, training=False).shape == (BATCH, NUM_CLASSES)
    last = model.layers[-1]
    assert isinstance(last, tf_keras.layers.Dense) and last.name == "logits"
    assert last.activation is tf_keras.activations.linear
    names = [layer.name for layer in model.layers]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", sorted(CASES))
def test_seed_determines_initialisation_and_names(name, plain):
    model, initial = plain(name)
    tf.random.set_seed(12345)  # disturb global random state: seeded builds must not depend on it
    tf.random.uniform([3])
    again = build(name, seed=0)
    assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]
    assert all(np.array_equal(a, b) for a, b in zip(initial, again.get_weights()))
    other = build(name, seed=1).get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(initial, other))


@pytest.mark.parametrize("name", sorted(CASES))
def test_count_and_prunable_weights_plain(name, plain):
    model, _ = plain(name)
    prunable, total = EXPECTED[name]
    assert models.count_params(model) == models.ParamCount(prunable=prunable, total=total)
    assert total == model.count_params()
    weights = models.prunable_weights(model)
    assert {id(w) for w in weights} == kernel_ids(model) and len(weights) == len(kernel_ids(model))
    # all of them belong to top-level Dense/Conv layers (ViT attention projections included), so code that wraps
    # only those layers prunes every one
    top_level = {id(layer.kernel) for layer in model.layers
                 if isinstance(layer, (tf_keras.layers.Dense, tf_keras.layers.Conv2D))}
    assert top_level == kernel_ids(model)


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_training_step(name, plain):
    assert np.isfinite(train_step(plain(name)[0], name))


@pytest.mark.parametrize("name", sorted(CASES))
def test_whole_model_pruning(name, plain):
    model, _ = plain(name)
    wrapped = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=PRUNE_AT_STEP_1)
    prunable, total = EXPECTED[name]
    assert models.count_params(wrapped) == models.ParamCount(prunable=prunable, total=total)
    # what we call prunable is exactly what tfmot prunes, and exactly the Dense/Conv kernels
    tfmot_vars = [w for layer in wrapped.layers if isinstance(layer, PruneLowMagnitude)
                  for w, _, _ in layer.pruning_vars]
    ours = models.prunable_weights(wrapped)
    assert {id(w) for w in ours} == {id(w) for w in tfmot_vars} == kernel_ids(model)
    assert np.isfinite(train_step(wrapped, name, [tfmot.sparsity.keras.UpdatePruningStep()]))
    zeros = sum(int(np.sum(w.numpy() == 0)) for w in ours)
    assert zeros / prunable == pytest.approx(0.5, abs=0.05)


def test_vit_trains_in_graph_mode():
    """The custom ViT layers (attention, class token, position embedding) inside tf.function."""
    assert np.isfinite(train_step(build("vit"), "vit", eager=False))


@pytest.mark.slow
def test_pruned_vit_trains_in_graph_mode():
    """The same under tfmot's wrappers (slow: tracing a wrapped net costs ~0.5-1 s per layer on a small CPU)."""
    wrapped = tfmot.sparsity.keras.prune_low_magnitude(build("vit"), pruning_schedule=PRUNE_AT_STEP_1)
    assert np.isfinite(train_step(wrapped, "vit", [tfmot.sparsity.keras.UpdatePruningStep()], eager=False))
    kernels = models.prunable_weights(wrapped)
    assert sum(int(np.sum(w.numpy() == 0)) for w in kernels) / EXPECTED["vit"][0] == pytest.approx(0.5, abs=0.05)


def test_count_variants():
    """The options change the counts as their definitions say."""
    cases = [
        (dict(name="fcn", input_shape=(6,), hidden=(7, 3)), fcn_params(6, (7, 3), 2)),
        (dict(name="vgg_like", input_shape=(8, 8, 3), depth=2, width=2, head="gap"),
         vgg_params(8, 8, 3, 2, 2, 2, head="gap")),
        (dict(name="vgg_like", input_shape=(5, 8, 1), depth=3, width=1), vgg_params(5, 8, 1, 3, 1, 2)),
        (dict(name="resnet_small", input_shape=(8, 8, 1), depth=3, width=1 / 16),
         resnet_params(1, (1, 1, 1), (4, 8, 16), 2)),
        (dict(name="vit", input_shape=(8, 4, 1), width=4, depth=2, heads=4, mlp_dim=6, patch_size=2,
              qkv_bias=True, patch_embedding="conv"), vit_params(8, 4, 1, 2, 4, 2, 6, 2, qkv_bias=True)),
    ]
    for kwargs, (prunable, total) in cases:
        model = models.build(num_classes=2, seed=1, **kwargs)
        assert models.count_params(model) == models.ParamCount(prunable, total), kwargs


@pytest.mark.parametrize("name,kwargs,match", [
    ("nope", {}, "valid choices: fcn, lenet300_100, resnet18, resnet_small, vgg_like, vit"),
    ("fcn", dict(width=0), r"fcn width .*int >= 1"),
    ("fcn", dict(depth=0), r"fcn depth .*int >= 1"),
    ("fcn", dict(hidden=(4, 0)), "ints >= 1"),
    ("fcn", dict(hidden=(4,), depth=3), "with hidden alone give no depth"),
    ("lenet300_100", dict(width=10), "fixed"),
    ("vgg_like", dict(width=0), r"width .*\[1, 16\]"),
    ("vgg_like", dict(depth=-1), r"depth .*\[1, 16\]"),
    ("vgg_like", dict(head="avg"), "'flatten', 'gap'"),
    ("resnet18", dict(width=0), "number > 0"),
    ("resnet18", dict(depth=2), "fixed"),
    ("resnet_small", dict(width=-0.5), "number > 0"),
    ("resnet_small", dict(depth=0), r"\[1, 4\]"),
    ("resnet_small", dict(hidden=(3,)), "takes no hidden"),
    ("vit", dict(width=0), r"dim .*int >= 1"),
    ("vit", dict(depth=0), r"depth .*int >= 1"),
    ("vit", dict(width=10, heads=4), "divisible by heads 4; valid heads for this dim: 1, 2, 5, 10"),
    ("vit", dict(dropout=1.0), r"\[0, 1\)"),
    ("vit", dict(patchsize=2), "valid options: dim, dropout, emb_dropout, heads, mlp_dim, patch_embedding"),
])
def test_bad_config_is_refused(name, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        models.validate(name, **kwargs)
    with pytest.raises(ConfigError, match=match):
        models.build(name, (8, 8, 3), 10, **kwargs)


def test_bad_input_shape_is_refused():
    with pytest.raises(ConfigError, match="valid patch sizes: 1, 2, 3, 5, 6, 10, 15, 30"):
        models.build("vit", (30, 30, 3), 10)
    with pytest.raises(ConfigError, match="valid patch sizes"):
        models.validate("vit", input_shape=(30, 30, 3))
    with pytest.raises(ConfigError, match=r"\(height, width, channels\)"):
        models.build("resnet18", (784,), 10)
    with pytest.raises(ConfigError, match="positive ints"):
        models.build("fcn", (0, 3), 10)
    with pytest.raises(ConfigError, match="num_classes"):
        models.build("fcn", (4,), 0)
    with pytest.raises(ConfigError, match="seed"):
        models.build("fcn", (4,), 2, seed=-1)


@pytest.mark.slow
def test_default_sizes_match_published_counts():
    """LeNet-300-100 has 266,610 parameters; the CIFAR ResNet-18 11,173,962 trainable ones."""
    lenet = models.build("lenet300_100", (28, 28, 1), 10)
    assert models.count_params(lenet).total == 266_610
    resnet = models.build("resnet18", (32, 32, 3), 10)
    assert sum(w.shape.num_elements() for w in resnet.trainable_weights) == 11_173_962
    assert models.count_params(resnet) == models.ParamCount(*resnet_params(3, (2,) * 4, (64, 128, 256, 512), 10))
    vgg = models.build("vgg_like", (32, 32, 3), 10)
    assert models.count_params(vgg) == models.ParamCount(*vgg_params(32, 32, 3, 5, 5, 10))
    vit = models.build("vit", (32, 32, 3), 10)
    assert models.count_params(vit) == models.ParamCount(*vit_params(32, 32, 3, 4, 512, 6, 512, 10))
