"""DistillationModel: the loss equals a hand computation, the teacher never changes, only the student learns, a
pruned student keeps its sparsity, cached and uncached teacher logits agree, save gives the student."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from keras_sdd import ConfigError, models
from keras_sdd.distillation import DistillationModel, cached_train_dataset, teacher_logits
from keras_sdd.pruning import tfmot_bridge
from keras_sdd.callbacks import SparsityLogger


def pair(student_width=8, teacher_width=12):
    student = models.build("fcn", (6,), 3, width=student_width, depth=1, seed=0)
    teacher = models.build("fcn", (6,), 3, width=teacher_width, depth=1, seed=1)
    return student, teacher


def batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)).astype(np.float32), rng.integers(0, 3, n)


def hand_loss(s, t, y, alpha, tau):
    """The objective in float64 numpy, term by term."""
    def log_softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    s, t = s.astype(np.float64), t.astype(np.float64)
    ce = -log_softmax(s)[np.arange(len(y)), y]
    lpt, lps = log_softmax(t / tau), log_softmax(s / tau)
    kl = (np.exp(lpt) * (lpt - lps)).sum(axis=1)
    return np.mean((1 - alpha) * ce + alpha * tau ** 2 * kl), np.mean(ce)


@pytest.mark.parametrize("alpha", [0.0, 0.8, 1.0])
def test_loss_equals_hand_computation(alpha):
    student, teacher = pair()
    x, y = batch()
    kd = DistillationModel(student, teacher, alpha=alpha, temperature=10.0)
    kd.compile(tf_keras.optimizers.SGD(0.0), metrics=[tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    got = kd.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    want, ce = hand_loss(student.predict(x, verbose=0), teacher.predict(x, verbose=0), y, alpha, 10.0)
    assert got["loss"] == pytest.approx(want, rel=1e-5)
    assert got["student_loss"] == pytest.approx(ce, rel=1e-5)
    assert got["accuracy"] == np.mean(np.argmax(student.predict(x, verbose=0), 1) == y)
    if alpha == 1.0:
        assert want > 0 and got["loss"] != pytest.approx(ce)   # the τ² KL term alone, not the CE


def test_teacher_frozen_and_gradients_reach_only_the_student():
    student, teacher = pair()
    # a teacher with BatchNorm and dropout: inference mode must leave its statistics alone
    x_img = np.random.default_rng(0).integers(0, 255, size=(24, 8, 8, 3)).astype(np.float32) / 255
    y_img = np.arange(24) % 3
    s_img = models.build("vgg_like", (8, 8, 3), 3, width=2, depth=2, seed=0)
    t_img = models.build("vgg_like", (8, 8, 3), 3, width=2, depth=2, seed=1)
    assert any(isinstance(layer, tf_keras.layers.BatchNormalization) for layer in t_img.layers)
    for s, t, x, y in ((student, teacher, *batch(32)), (s_img, t_img, x_img, y_img)):
        before = [w.copy() for w in t.get_weights()]
        kd = DistillationModel(s, t)
        kd.compile(tf_keras.optimizers.SGD(0.1, momentum=0.9))
        s_before = [w.copy() for w in s.get_weights()]
        kd.fit(x, y, batch_size=8, epochs=2, verbose=0)
        for w0, w1 in zip(before, t.get_weights()):
            np.testing.assert_array_equal(w0, w1)             # bit-identical, BN moving statistics included
        assert any(not np.array_equal(a, b) for a, b in zip(s_before, s.get_weights()))
        assert {id(v) for v in kd.trainable_variables} == {id(v) for v in s.trainable_variables}
    with tf.GradientTape() as tape:
        x, y = batch()
        _, _, loss, _ = kd._objective(tf.constant(x_img[:8]), tf.constant(y_img[:8]), None, training=True)
    grads = tape.gradient(loss, t_img.trainable_weights + s_img.trainable_weights)
    assert all(g is None for g in grads[:len(t_img.trainable_weights)])
    assert all(g is not None for g in grads[len(t_img.trainable_weights):])


def test_cached_and_uncached_teacher_logits_agree():
    student, teacher = pair()
    x, y = batch(16)
    kd = DistillationModel(student, teacher)
    kd.compile(tf_keras.optimizers.SGD(0.1))
    t = teacher_logits(teacher, x)
    results = []
    for targets in (tf.constant(y), (tf.constant(y), tf.constant(t))):
        with tf.GradientTape() as tape:
            _, _, loss, _ = kd._objective(tf.constant(x), targets, None, training=True)
        results.append((float(loss), tape.gradient(loss, student.trainable_variables)))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    for g0, g1 in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(g0.numpy(), g1.numpy(), rtol=1e-5, atol=1e-7)


def test_cached_pipeline_carries_the_right_logits():
    from keras_sdd import data

    bundle = data.load("gaussian_mixture", dim=6, train_size=64, test_size=16, noise_rate=0.2, val_fraction=0.0)
    teacher = models.build("fcn", (6,), 2, width=8, depth=1, seed=1)
    ds = cached_train_dataset(bundle, teacher, 16, seed=0, epochs=1)
    logits = teacher_logits(teacher, bundle.inputs_dataset("train", 64))
    for xb, (yb, tb) in ds:
        np.testing.assert_allclose(tb.numpy(), teacher.predict(xb, verbose=0), rtol=1e-5, atol=1e-6)
    assert logits.shape == (64, 2)


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
    # tfmot's stock wrapper with its own schedule and UpdatePruningStep
    student, teacher = pair()
    stock = tfmot.sparsity.keras.prune_low_magnitude(
        student, pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0, frequency=1))
    kd = DistillationModel(stock, teacher)
    kd.compile(tf_keras.optimizers.SGD(0.1))
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
    kd = DistillationModel(student, teacher)
    kd.compile(tf_keras.optimizers.SGD(0.1))
    x, y = batch()
    kd.fit(x, y, epochs=1, verbose=0)
    kd.save(tmp_path / "student.keras")
    loaded = tf_keras.models.load_model(tmp_path / "student.keras", compile=False)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), kd.predict(x, verbose=0), rtol=1e-6)
    assert len(loaded.weights) == len(student.weights)


def test_same_zoo_teacher_and_checkpoint_round_trip(tmp_path):
    student = models.build("fcn", (6,), 3, width=8, depth=1, seed=0)
    teacher = models.build("fcn", (6,), 3, width=8, depth=1, seed=1)   # same name, same layer names
    kd = DistillationModel(student, teacher)
    kd.compile(tf_keras.optimizers.SGD(0.1))
    x, y = batch()
    kd.fit(x, y, epochs=1, verbose=0)
    path = tf.train.Checkpoint(model=kd).write(str(tmp_path / "ckpt"))
    saved = [w.copy() for w in student.get_weights()]
    student.set_weights([np.zeros_like(w) for w in saved])
    tf.train.Checkpoint(model=kd).read(path).expect_partial()
    for a, b in zip(saved, student.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, message", [
    (dict(alpha=1.5), "alpha must lie in"), (dict(alpha=-0.1), "alpha must lie in"),
    (dict(temperature=0.0), "temperature must be > 0"),
])
def test_bad_settings_refused(kwargs, message):
    student, teacher = pair()
    with pytest.raises(ConfigError, match=message):
        DistillationModel(student, teacher, **kwargs)


def test_mismatched_teacher_refused():
    student = models.build("fcn", (6,), 3, width=8, depth=1, seed=0)
    with pytest.raises(ConfigError, match=r"teacher takes inputs of shape \(7,\)"):
        DistillationModel(student, models.build("fcn", (7,), 3, width=8, depth=1, seed=1))
    with pytest.raises(ConfigError, match=r"teacher predicts 4 classes but the student's data has 3"):
        DistillationModel(student, models.build("fcn", (6,), 4, width=8, depth=1, seed=1))
