"""DistillationModel: the loss equals a hand computation, the teacher never changes and stays in inference mode,
only the student learns (its add_loss terms included), a pruned student keeps its sparsity, cached and uncached
teacher logits agree, persistence gives the student, bad settings are refused."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from keras_sdd import ConfigError, models
from keras_sdd.callbacks import SparsityLogger
from keras_sdd.distillation import DistillationModel, cached_train_dataset, teacher_logits
from keras_sdd.pruning import tfmot_bridge


def pair(student_width=8, teacher_width=12):
    student = models.build("fcn", (6,), 3, width=student_width, depth=1, seed=0)
    teacher = models.build("fcn", (6,), 3, width=teacher_width, depth=1, seed=1)
    return student, teacher


def batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)).astype(np.float32), rng.integers(0, 3, n)


def images(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, size=(n, 8, 8, 3)).astype(np.float32) / 255, np.arange(n) % 3


def hand_loss(s, t, y, alpha, tau, w=None):
    """The objective in float64 numpy, term by term: (distillation loss, cross-entropy), Keras-reduced."""
    def log_softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    s, t = s.astype(np.float64), t.astype(np.float64)
    w = np.ones(len(y)) if w is None else w
    ce = -log_softmax(s)[np.arange(len(y)), y]
    lpt, lps = log_softmax(t / tau), log_softmax(s / tau)
    kl = (np.exp(lpt) * (lpt - lps)).sum(axis=1)
    return np.mean(w * ((1 - alpha) * ce + alpha * tau ** 2 * kl)), np.mean(w * ce)


def sgd_kd(student, teacher, lr=0.1, **kw):
    kd = DistillationModel(student, teacher, **kw)
    kd.compile(tf_keras.optimizers.SGD(lr), metrics=[tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return kd


@pytest.mark.parametrize("alpha", [0.0, 0.8, 1.0])
def test_loss_equals_hand_computation(alpha):
    student, teacher = pair()
    x, y = batch()
    kd = sgd_kd(student, teacher, lr=0.0, alpha=alpha, temperature=10.0)
    s, t = student.predict(x, verbose=0), teacher.predict(x, verbose=0)
    want, ce = hand_loss(s, t, y, alpha, 10.0)
    # one batch, and 16 examples in batches of 6 (a partial last batch): both are the per-example mean
    for bs in (16, 6):
        got = kd.evaluate(x, y, batch_size=bs, verbose=0, return_dict=True)
        assert got["loss"] == pytest.approx(want, rel=1e-5)
        assert got["student_loss"] == pytest.approx(ce, rel=1e-5)
        assert got["accuracy"] == pytest.approx(np.mean(np.argmax(s, 1) == y))
    if alpha == 1.0:
        assert want > 0 and got["loss"] != pytest.approx(ce)   # the τ² KL term alone, not the CE
    if alpha == 0.8:   # τ² really scales the KL: τ = 2 gives a different number, equal to its hand value
        kd2 = sgd_kd(student, teacher, lr=0.0, alpha=alpha, temperature=2.0)
        got2 = kd2.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
        assert got2["loss"] == pytest.approx(hand_loss(s, t, y, alpha, 2.0)[0], rel=1e-5)
        # sample weights reduce as Keras' compiled losses do: Σ wᵢ·lᵢ / batch size
        w = np.linspace(0.0, 2.0, len(y))
        got3 = kd.evaluate(x, y, sample_weight=w, batch_size=16, verbose=0, return_dict=True)
        assert got3["loss"] == pytest.approx(hand_loss(s, t, y, alpha, 10.0, w)[0], rel=1e-5)


def test_train_step_is_one_sgd_step_on_the_objective_plus_student_losses():
    student, teacher = pair()
    kernel = student.get_layer("dense1").kernel
    student.add_loss(lambda: 0.05 * tf.reduce_sum(tf.square(kernel)))   # e.g. the --l2 penalty
    x, y = batch(16)
    kd = sgd_kd(student, teacher, lr=0.5)
    w0 = [v.numpy() for v in student.trainable_variables]
    with tf.GradientTape(persistent=True) as tape:
        _, _, loss, _ = kd.compute_objective(tf.constant(x), tf.constant(y), training=True)
        total = loss + tf.add_n(student.losses)
    g = tape.gradient(total, student.trainable_variables)
    g_kd = tape.gradient(loss, student.trainable_variables)
    assert not np.allclose(g[0].numpy(), g_kd[0].numpy())                # the penalty matters here
    assert all(gt is None for gt in tape.gradient(total, teacher.weights))  # nothing reaches the teacher
    kd.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, gi, b in zip(w0, g, student.trainable_variables):
        np.testing.assert_allclose(b.numpy(), a - 0.5 * gi.numpy(), rtol=1e-5, atol=1e-6)


def test_teacher_frozen_and_gradients_reach_only_the_student():
    x, y = batch(32)
    x_img, y_img = images()
    s_img = models.build("vgg_like", (8, 8, 3), 3, width=2, depth=2, seed=0)
    t_img = models.build("vgg_like", (8, 8, 3), 3, width=2, depth=2, seed=1)   # BatchNorm: stats must stay
    assert any(isinstance(layer, tf_keras.layers.BatchNormalization) for layer in t_img.layers)
    for s, t, xs, ys in ((*pair(), x, y), (s_img, t_img, x_img, y_img)):
        before = [w.copy() for w in t.get_weights()]
        kd = DistillationModel(s, t)
        kd.compile(tf_keras.optimizers.SGD(0.1, momentum=0.9), steps_per_execution=2)
        s_before = [w.copy() for w in s.get_weights()]
        kd.fit(xs, ys, batch_size=8, epochs=2, verbose=0)
        for w0, w1 in zip(before, t.get_weights()):
            np.testing.assert_array_equal(w0, w1)             # bit-identical, BN moving statistics included
        assert any(not np.array_equal(a, b) for a, b in zip(s_before, s.get_weights()))
        assert {id(v) for v in kd.trainable_variables} == {id(v) for v in s.trainable_variables}
        assert not t.trainable and not t.trainable_variables
    with tf.GradientTape() as tape:
        _, _, loss, _ = kd.compute_objective(tf.constant(x_img[:8]), tf.constant(y_img[:8]), training=True)
    grads = tape.gradient(loss, t_img.weights + s_img.trainable_weights)
    assert all(g is None for g in grads[:len(t_img.weights)])
    assert all(g is not None for g in grads[len(t_img.weights):])


@pytest.mark.parametrize("teacher_spec", [
    ("resnet_small", dict(width=0.1, depth=1)),
    ("vit", dict(width=8, depth=1, patch_size=4, heads=2, mlp_dim=8, dropout=0.5, emb_dropout=0.5)),
])
def test_other_architecture_teacher_in_inference_mode(teacher_spec):
    """A VGG student under a teacher of another family (BatchNorm in ResNet, dropout in ViT): the teacher run inside
    the step gives exactly its inference-mode (cached) logits, so loss and gradients agree, and it never changes."""
    x, y = images(16)
    student = models.build("vgg_like", (8, 8, 3), 3, width=2, depth=2, seed=0)
    teacher = models.build(teacher_spec[0], (8, 8, 3), 3, seed=1, **teacher_spec[1])
    kd = sgd_kd(student, teacher)
    t = teacher_logits(teacher, x, batch_size=16)
    out = []
    for targets in (tf.constant(y), (tf.constant(y), tf.constant(t))):
        with tf.GradientTape() as tape:
            _, _, loss, _ = kd.compute_objective(tf.constant(x), targets, training=True)
        out.append((loss.numpy(), [g.numpy() for g in tape.gradient(loss, student.trainable_variables)]))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-6)
    for g0, g1 in zip(out[0][1], out[1][1]):
        np.testing.assert_allclose(g0, g1, rtol=1e-5, atol=1e-7)
    before = [w.copy() for w in teacher.get_weights()]
    kd.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, teacher.get_weights()))


def test_cached_and_uncached_teacher_logits_agree():
    student, teacher = pair()
    x, y = batch(16)
    kd = sgd_kd(student, teacher)
    t = teacher_logits(teacher, x)
    results = []
    for targets in (tf.constant(y), (tf.constant(y), tf.constant(t))):
        with tf.GradientTape() as tape:
            _, _, loss, _ = kd.compute_objective(tf.constant(x), targets, training=True)
        results.append((float(loss), tape.gradient(loss, student.trainable_variables)))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    for g0, g1 in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(g0.numpy(), g1.numpy(), rtol=1e-5, atol=1e-7)
    # and through fit: two identical students, same batches, end at the same weights
    students = [models.build("fcn", (6,), 3, width=8, depth=1, seed=0) for _ in range(2)]
    for s, ys in zip(students, (y, (y, t))):
        kd = DistillationModel(s, teacher)
        kd.compile(tf_keras.optimizers.SGD(0.1), steps_per_execution=2)
        kd.fit(x, ys, batch_size=4, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(*(s.get_weights() for s in students)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_cached_pipeline_carries_the_right_logits():
    from keras_sdd import data

    bundle = data.load("gaussian_mixture", dim=6, train_size=64, test_size=16, noise_rate=0.2, val_fraction=0.0)
    teacher = models.build("fcn", (6,), 2, width=8, depth=1, seed=1)
    ds = cached_train_dataset(bundle, teacher, 16, seed=0, epochs=2)
    plain = bundle.train_dataset(16, seed=0, epochs=2)
    n = 0
    for (xb, (yb, tb)), (xp, yp) in zip(ds, plain):   # same order and labels as the uncached stream
        np.testing.assert_array_equal(xb.numpy(), xp.numpy())
        np.testing.assert_array_equal(yb.numpy(), yp.numpy())
        np.testing.assert_allclose(tb.numpy(), teacher.predict(xb, verbose=0), rtol=1e-5, atol=1e-6)
        n += 1
    assert n == 8
    logits = teacher_logits(teacher, bundle.inputs_dataset("train", 64))
    assert logits.shape == (64, 2) and logits.dtype == np.float32
    kd = sgd_kd(models.build("fcn", (6,), 2, width=4, depth=1, seed=0), teacher)
    hist = kd.fit(cached_train_dataset(bundle, teacher, 16, seed=0, epochs=1, logits=logits), verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    with pytest.raises(ConfigError, match="targets_extra has 63 rows"):
        bundle.train_dataset(16, seed=0, epochs=1, targets_extra=logits[:63])


def test_cached_pipeline_refused_with_random_augmentation():
    class Augmented:
        augment = "standard"
    with pytest.raises(ConfigError, match="cannot be cached with augment='standard'"):
        cached_train_dataset(Augmented(), None, 16, seed=0)


def test_pruned_student_keeps_exact_sparsity():
    x, y = batch(64)
    # keras_sdd's fixed-mask wrapper
    student, teacher = pair()
    wrapped = tfmot_bridge.wrap(student)
    tfmot_bridge.prune(wrapped, 0.5)
    pruned = tfmot_bridge.sparsity_report(wrapped).pruned
    kd = DistillationModel(wrapped, teacher)
    kd.compile(tf_keras.optimizers.SGD(0.1, momentum=0.9), steps_per_execution=3)
    kd.fit(x, y, batch_size=8, epochs=2, verbose=0)
    tfmot_bridge.apply_masks(wrapped)
    weights, masks = tfmot_bridge.get_weights(wrapped), tfmot_bridge.get_masks(wrapped)
    assert sum(int(np.sum(weights[k] == 0)) for k in weights) == pruned
    assert all(np.all(weights[k][masks[k] == 0] == 0) for k in weights)
    assert tfmot_bridge.sparsity_report(wrapped).pruned == pruned
    # tfmot's stock wrapper with its own schedule and UpdatePruningStep
    student, teacher = pair()
    stock = tfmot.sparsity.keras.prune_low_magnitude(
        student, pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0, frequency=1))
    kd = DistillationModel(stock, teacher)
    kd.compile(tf_keras.optimizers.SGD(0.1), steps_per_execution=2)
    kd.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(stock)
    kernels = [layer.kernel.numpy() for layer in stripped.layers if hasattr(layer, "kernel")]
    assert all(abs(np.mean(k == 0) - 0.5) < 0.02 for k in kernels)


def test_package_callbacks_work_in_a_distillation_fit(tmp_path):
    student, teacher = pair()
    wrapped = tfmot_bridge.wrap(student)
    tfmot_bridge.prune(wrapped, 0.5)
    kd = DistillationModel(wrapped, teacher)
    kd.compile(tf_keras.optimizers.SGD(0.1))
    x, y = batch(32)
    history = kd.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[SparsityLogger(tmp_path / "tb")])
    np.testing.assert_allclose(history.history["sparsity"], [0.5, 0.5], atol=0.02)
    assert set(history.history) >= {"loss", "student_loss", "sparsity"}


def test_save_writes_the_student_alone(tmp_path):
    student, teacher = pair()
    kd = sgd_kd(student, teacher)
    x, y = batch()
    kd.fit(x, y, epochs=1, verbose=0)
    kd.save(tmp_path / "student.keras")
    loaded = tf_keras.models.load_model(tmp_path / "student.keras", compile=False)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), kd.predict(x, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(kd.predict(x, verbose=0), student.predict(x, verbose=0), rtol=1e-6)
    assert len(loaded.weights) == len(student.weights)
    with pytest.raises(NotImplementedError, match="not serialisable"):
        kd.get_config()


def test_same_zoo_teacher_and_checkpoint_round_trip(tmp_path):
    student = models.build("fcn", (6,), 3, width=8, depth=1, seed=0)
    teacher = models.build("fcn", (6,), 3, width=8, depth=1, seed=1)   # same name, same layer names
    assert student.name == teacher.name
    kd = sgd_kd(student, teacher)
    kd.summary(print_fn=lambda *a, **k: None)
    x, y = batch()
    kd.fit(x, y, epochs=1, verbose=0)
    saved = [w.copy() for w in student.get_weights()]
    t_saved = [w.copy() for w in teacher.get_weights()]
    path = tf.train.Checkpoint(model=kd).write(str(tmp_path / "ckpt"))
    kd.save_weights(str(tmp_path / "w.h5"))                              # h5 keys by name: the student's alone
    for reader in (lambda: tf.train.Checkpoint(model=kd).read(path).assert_existing_objects_matched(),
                   lambda: kd.load_weights(str(tmp_path / "w.h5"))):
        student.set_weights([np.zeros_like(w) for w in saved])
        reader()
        for a, b in zip(saved, student.get_weights()):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(t_saved, teacher.get_weights()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, message", [
    (dict(alpha=1.5), "alpha must lie in"), (dict(alpha=-0.1), "alpha must lie in"),
    (dict(alpha=float("nan")), "alpha must lie in"), (dict(alpha="x"), "must be numbers"),
    (dict(temperature=0.0), "temperature must be > 0"), (dict(temperature=-1), "temperature must be > 0"),
    (dict(temperature=float("inf")), "temperature must be > 0"),
])
def test_bad_settings_refused(kwargs, message):
    student, teacher = pair()
    with pytest.raises(ConfigError, match=message):
        DistillationModel(student, teacher, **kwargs)


def test_mismatched_or_unusable_teacher_refused():
    student = models.build("fcn", (6,), 3, width=8, depth=1, seed=0)
    with pytest.raises(ConfigError, match=r"teacher takes inputs of shape \(7,\) but the student takes \(6,\)"):
        DistillationModel(student, models.build("fcn", (7,), 3, width=8, depth=1, seed=1))
    with pytest.raises(ConfigError, match=r"teacher predicts 4 classes .* but the student predicts 3"):
        DistillationModel(student, models.build("fcn", (6,), 4, width=8, depth=1, seed=1))
    with pytest.raises(ConfigError, match="the student itself"):
        DistillationModel(student, student)
    wrapped_teacher = tfmot_bridge.wrap(models.build("fcn", (6,), 3, width=8, depth=1, seed=1))
    with pytest.raises(ConfigError, match="strip"):
        DistillationModel(student, wrapped_teacher)
    DistillationModel(student, tfmot_bridge.strip(wrapped_teacher))
    kd = DistillationModel(student, models.build("fcn", (6,), 3, width=8, depth=1, seed=1))
    with pytest.raises(ConfigError, match="without loss"):
        kd.compile("sgd", loss="sparse_categorical_crossentropy")
