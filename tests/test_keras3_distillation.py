"""Keras 3 DistillationModel: the objective against a numpy reference, cached = live teacher, sample weights, the
student's own ℓ2 kept (the teacher's not), only the student trained and pruned, persistence of the student."""
import json

import keras
import numpy as np
import pytest

from keras_sdd.errors import ConfigError
from keras_sdd.keras3 import DistillationModel, IterativeMagnitudePruning, SparsityLogger, strip, teacher_logits
from keras_sdd.pruning.masks import count_for


def _mlp(seed, l2=0.0, classes=4, d=10):
    keras.utils.set_random_seed(seed)
    reg = keras.regularizers.L2(l2) if l2 else None
    return keras.Sequential([keras.Input((d,)), keras.layers.Dense(12, activation="relu", kernel_regularizer=reg),
                             keras.layers.Dense(classes, kernel_regularizer=reg)])


def _reference(labels, s, t, alpha, tau, w=None):
    """(1 − α)·CE + α·τ²·KL(softmax(t/τ) ‖ softmax(s/τ)), per example, weighted mean over the batch (numpy)."""
    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))
    ce = -log_softmax(s)[np.arange(len(labels)), labels]
    lt, ls = log_softmax(t / tau), log_softmax(s / tau)
    kl = (np.exp(lt) * (lt - ls)).sum(-1)
    per = (1 - alpha) * ce + alpha * tau ** 2 * kl
    return float(np.mean(per * (1.0 if w is None else w))), float(np.mean(ce * (1.0 if w is None else w)))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(32, 10)).astype("float32"), rng.integers(0, 4, 32),
            rng.uniform(0.5, 2.0, 32).astype("float32"))


def test_loss_equals_the_formula_on_fixed_logits(data):
    _, labels, w = data
    rng = np.random.default_rng(1)
    s = rng.normal(scale=3.0, size=(32, 4)).astype("float32")
    t = rng.normal(scale=3.0, size=(32, 4)).astype("float32")
    model = DistillationModel(_mlp(2), _mlp(1), alpha=0.7, temperature=4.0)
    for weights in (None, w):
        got = float(np.asarray(model.compute_loss(None, (labels, t), s, weights)))
        assert got == pytest.approx(_reference(labels, s, t, 0.7, 4.0, weights)[0], rel=1e-5)
    hard = DistillationModel(_mlp(2), _mlp(1), alpha=0.0, temperature=4.0)  # α = 0: plain cross-entropy
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, s)
    assert float(np.asarray(hard.compute_loss(None, (labels, t), s))) == pytest.approx(float(np.asarray(ce)),
                                                                                        rel=1e-5)


def test_cached_and_live_teacher_give_the_same_loss_and_the_students_l2_is_kept(data):
    x, labels, w = data
    student, teacher = _mlp(2, l2=0.001), _mlp(1, l2=0.01)
    model = DistillationModel(student, teacher, alpha=0.7, temperature=4.0)
    model.compile(keras.optimizers.SGD(0.05), metrics=["accuracy"])
    cached = teacher_logits(teacher, x)
    live = model.evaluate(x, labels, sample_weight=w, batch_size=32, verbose=0, return_dict=True)
    from_cache = model.evaluate(x, (labels, cached), sample_weight=w, batch_size=32, verbose=0, return_dict=True)
    assert live == pytest.approx(from_cache, rel=1e-5)
    kd, ce = _reference(labels, np.asarray(student(x)), cached, 0.7, 4.0, w)
    l2 = sum(0.001 * float(np.sum(np.asarray(layer.kernel) ** 2)) for layer in student.layers)
    assert live["loss"] == pytest.approx(kd + l2, rel=1e-5)  # the student's ℓ2 in, the teacher's out
    assert live["student_loss"] == pytest.approx(ce, rel=1e-5)
    assert live["accuracy"] == pytest.approx(np.mean(np.argmax(np.asarray(student(x)), -1) == labels))


def test_only_the_student_is_trained_and_pruned(data, tmp_path):
    x, labels, _ = data
    student, teacher = _mlp(2), _mlp(1)
    before = [np.asarray(v).copy() for v in teacher.weights]
    model = DistillationModel(student, teacher)
    model.compile(keras.optimizers.Adam(0.01))
    imp = IterativeMagnitudePruning(prune_epochs=[1, 2], verbose=0)
    history = model.fit(x, (labels, teacher_logits(teacher, x)), batch_size=8, epochs=3, verbose=0,
                        callbacks=[imp, SparsityLogger()])
    total = sum(int(np.size(layer.kernel)) for layer in student.layers)
    assert history.history["sparsity"] == pytest.approx(
        [0.0, count_for(0.2, total) / total, count_for(0.36, total) / total], abs=1e-12)
    assert sum(int(np.sum(np.asarray(layer.kernel) == 0)) for layer in student.layers) == count_for(0.36, total)
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(before, teacher.weights))
    assert all(v.constraint is None for v in teacher.weights)
    plain = strip(model, tmp_path / "student.keras")
    assert plain is student
    loaded = keras.saving.load_model(tmp_path / "student.keras")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(student(x)), rtol=1e-5, atol=1e-6)


def test_refusals():
    student = _mlp(2)
    with pytest.raises(ConfigError, match="student itself"):
        DistillationModel(student, student)
    with pytest.raises(ConfigError, match="shape"):
        DistillationModel(student, _mlp(1, classes=5))
    with pytest.raises(ConfigError, match="alpha"):
        DistillationModel(student, _mlp(1), alpha=1.5)
    with pytest.raises(ConfigError, match="without loss"):
        DistillationModel(student, _mlp(1)).compile("sgd", loss="mse")


def test_on_jax(run_keras3):
    proc = run_keras3(["tests/keras3_distill_script.py"], "jax")
    assert proc.returncode == 0, proc.stdout[-4000:]
    out = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert out["backend"] == "jax"
    assert out["live"] == pytest.approx(out["cached"], rel=1e-5)
    assert out["teacher_unchanged"] and out["teacher_zeros"] == 0
    total = out["student_kernel_size"]
    assert out["history"] == {"0": 0.0, "1": count_for(0.2, total) / total}
    assert out["student_kernel_zeros"] == count_for(0.2, total)
