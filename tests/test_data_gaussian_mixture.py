"""The Gaussian-mixture source: exact Bayes posteriors, calibrated against the empirical Bayes accuracy."""
import numpy as np
import pytest

import keras_sdd  # noqa: F401
from keras_sdd import ConfigError, data
from keras_sdd.data import gaussian_mixture as gm


def test_default_separation_gives_bayes_accuracy_09():
    assert gm.bayes_accuracy("linear", gm.nu_for_accuracy("linear", 0.9)) == pytest.approx(0.9, abs=1e-12)
    assert gm.nu_for_accuracy("linear", 0.9) == pytest.approx(2 * 1.2815515655446004, rel=1e-9)
    assert gm.bayes_accuracy("xor", gm.nu_for_accuracy("xor", 0.8)) == pytest.approx(0.8, abs=1e-12)
    b = data.load("gaussian_mixture", dim=10, train_size=50, test_size=10)
    assert b.info.extras["bayes_accuracy"] == pytest.approx(0.9)
    assert b.info.extras["nu"] == pytest.approx(2.5631031, rel=1e-6)


@pytest.mark.parametrize("task,dim", [("linear", 30), ("xor", 6)])
def test_bayes_proba_calibrated(task, dim):
    b = data.load("gaussian_mixture", seed=2, task=task, dim=dim, train_size=100, test_size=40_000,
                  val_fraction=0.0)
    p, y = b.bayes_proba, b.test.y
    assert p.shape == (40_000, 2) and np.allclose(p.sum(1), 1)
    correct = p.argmax(1) == y
    se = np.sqrt(0.09 / y.size)
    # the posterior's own confidence predicts the Bayes rule's accuracy ...
    assert abs(p.max(1).mean() - correct.mean()) < 4 * se
    # ... which is the designed 0.9
    assert abs(correct.mean() - 0.9) < 4 * se
    # calibration within confidence bins, too
    conf = p.max(1)
    for lo, hi in ((0.5, 0.7), (0.7, 0.9), (0.9, 1.0)):
        sel = (conf >= lo) & (conf < hi)
        assert abs(correct[sel].mean() - conf[sel].mean()) < 4 * np.sqrt(0.25 / sel.sum()) + 1e-3
    assert abs(y.mean() - 0.5) < 4 * np.sqrt(0.25 / y.size)  # equal priors


def test_xor_posterior_equals_brute_force_mixture_density():
    mix = gm.GaussianMixture.create("xor", 5, 2.0, seed=0)
    d = mix.directions
    np.testing.assert_allclose(d @ d.T, np.eye(2), atol=1e-12)
    x, _ = mix.sample(200, seed=1)
    a = mix.nu / 2
    dens = {}
    for s1 in (-1, 1):
        for s2 in (-1, 1):
            mean = a * (s1 * d[0] + s2 * d[1])
            dens[(s1, s2)] = np.exp(-0.5 * ((x - mean) ** 2).sum(1))
    p1 = (dens[(1, -1)] + dens[(-1, 1)]) / sum(dens.values())
    np.testing.assert_allclose(mix.proba(x)[:, 1], p1, rtol=1e-9, atol=1e-12)


def test_linear_posterior_and_labels():
    mix = gm.GaussianMixture.create("linear", 4, 3.0, seed=0)
    x, y = mix.sample(20_000, seed=2)
    u = mix.directions[0]
    # class 1 sits at +nu/2 u: its mean projection is nu/2
    assert abs((x[y == 1] @ u).mean() - 1.5) < 0.05 and abs((x[y == 0] @ u).mean() + 1.5) < 0.05
    m = 1.5 * u
    d1, d0 = np.exp(-0.5 * ((x - m) ** 2).sum(1)), np.exp(-0.5 * ((x + m) ** 2).sum(1))
    np.testing.assert_allclose(mix.proba(x[:50])[:, 1], (d1 / (d0 + d1))[:50], rtol=1e-9)


def test_seeded_and_features_raw():
    a = data.load("gaussian_mixture", seed=1, dim=8, train_size=100, test_size=20)
    b = data.load("gaussian_mixture", seed=1, dim=8, train_size=100, test_size=20)
    c = data.load("gaussian_mixture", seed=2, dim=8, train_size=100, test_size=20)
    np.testing.assert_array_equal(a.train.x, b.train.x)
    assert not np.array_equal(a.train.x, c.train.x)
    assert a.train.x.dtype == np.float32 and a.info.input_shape == (8,)
    assert a.mean is None  # features are not normalised
    x = np.concatenate([xb.numpy() for xb in a.inputs_dataset("test", 7)])
    np.testing.assert_array_equal(x, a.test.x)


def test_options_checked():
    with pytest.raises(ConfigError, match="valid options: .*bayes_accuracy"):
        data.validate("gaussian_mixture", width=3)
    with pytest.raises(ConfigError, match="not both"):
        data.validate("gaussian_mixture", nu=1.0, bayes_accuracy=0.8)
    with pytest.raises(ConfigError, match="linear, xor"):
        data.validate("gaussian_mixture", task="circle")
    with pytest.raises(ConfigError, match=r"\(0.5, 1\)"):
        data.validate("gaussian_mixture", bayes_accuracy=1.2)
    with pytest.raises(ConfigError, match="feature vectors"):
        data.validate("gaussian_mixture", augment="standard")
    with pytest.raises(ConfigError, match="takes no option"):
        data.validate("mnist", dim=3)
