"""Training policy: learning-rate schedules, the fine-tuning override, optimizer reset, the ℓ2 penalty."""
import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from keras_sdd.config import StudyConfig
from keras_sdd.training import policy


def test_multistep_values():
    s = policy.RoundSchedule("multistep", 0.1, steps_per_epoch=10, epochs=160, milestones=(80, 120), gamma=0.1)
    assert s.value_at(0) == pytest.approx(0.1)
    assert s.value_at(799) == pytest.approx(0.1)
    assert s.value_at(800) == pytest.approx(0.01)
    assert s.value_at(1199) == pytest.approx(0.01)
    assert s.value_at(1200) == pytest.approx(0.001)


def test_cosine_values():
    s = policy.RoundSchedule("cosine", 1e-3, steps_per_epoch=4, epochs=10)
    assert s.value_at(0) == pytest.approx(1e-3)
    assert s.value_at(20) == pytest.approx(0.5e-3)
    assert s.value_at(10) == pytest.approx(0.5e-3 * (1 + math.cos(math.pi / 4)))
    assert s.value_at(40) == pytest.approx(0.0, abs=1e-12)
    assert s.value_at(400) == pytest.approx(0.0, abs=1e-12)


def test_override_switches_without_new_schedule():
    s = policy.RoundSchedule("multistep", 0.1, steps_per_epoch=1, epochs=10, milestones=(5,))
    s.override.assign(0.003)
    assert s.value_at(0) == pytest.approx(0.003) and s.value_at(7) == pytest.approx(0.003)
    s.override.assign(-1.0)
    assert s.value_at(7) == pytest.approx(0.01)


@pytest.mark.parametrize("name, cls", [("sgd", "SGD"), ("adam", "Adam"), ("adamw", "AdamW")])
def test_make_optimizer(name, cls):
    c = StudyConfig(optimizer=name, weight_decay=0.01 if name == "adamw" else 0.0, momentum=0.5)
    opt = policy.make_optimizer(c, policy.make_schedule(c, 10))
    assert type(opt).__name__ == cls
    if name == "sgd":
        assert opt.momentum == 0.5


def test_reset_optimizer_zeroes_state():
    model = tf_keras.Sequential([tf_keras.layers.Dense(3, input_shape=(4,))])
    opt = tf_keras.optimizers.SGD(0.1, momentum=0.9)
    model.compile(opt, "mse")
    model.fit(np.ones((8, 4)), np.ones((8, 3)), epochs=2, verbose=0)
    assert int(opt.iterations.numpy()) == 2
    assert any(np.abs(v.numpy()).sum() > 0 for v in opt.variables[1:])
    policy.reset_optimizer(opt)
    assert int(opt.iterations.numpy()) == 0
    assert all(np.abs(v.numpy()).sum() == 0 for v in opt.variables)


def test_l2_penalty_value_and_gradient():
    tf_keras.utils.set_random_seed(0)
    inp = tf_keras.Input((4,))
    out = tf_keras.layers.Dense(2, name="d")(inp)
    model = tf_keras.Model(inp, out)
    kernel = model.get_layer("d").kernel
    policy.add_l2_penalty(model, 0.5, [kernel])
    expected = 0.25 * float(np.sum(kernel.numpy() ** 2))
    assert float(model.losses[0]) == pytest.approx(expected, rel=1e-6)
    # One SGD step on the penalty alone shrinks the kernel by the factor (1 - lr·λ): weight decay λ.
    model.compile(tf_keras.optimizers.SGD(0.1), loss=lambda y, p: tf.reduce_sum(p) * 0.0)
    before = kernel.numpy().copy()
    model.fit(np.zeros((2, 4)), np.zeros((2, 2)), batch_size=2, verbose=0)
    np.testing.assert_allclose(kernel.numpy(), before * (1 - 0.1 * 0.5), rtol=1e-5)
