"""Synthetic label noise: exact counts, never the true class, uniform over the others, seeded."""
import numpy as np
import pytest
from scipy.stats import chisquare

import keras_sdd  # noqa: F401
from keras_sdd import ConfigError
from keras_sdd.data import label_noise as ln

K = 10


def _labels(n, seed=0):
    return np.random.default_rng(seed).integers(0, K, n).astype(np.int64)


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.37, 0.8])
@pytest.mark.parametrize("fn", [ln.symmetric_noise, ln.pairflip_noise])
def test_exact_number_of_flips(fn, rate):
    y = _labels(10_001)
    noisy = fn(y, rate, K, seed=3)
    assert noisy.dtype == np.int64 and noisy.shape == y.shape
    assert int((noisy != y).sum()) == round(rate * y.size)
    assert noisy.min() >= 0 and noisy.max() < K


def test_symmetric_new_label_uniform_over_other_classes():
    y = _labels(200_000)
    noisy = ln.symmetric_noise(y, 0.5, K, seed=1)
    flipped = noisy != y
    shift = (noisy[flipped] - y[flipped]) % K
    assert shift.min() >= 1  # never the true class
    counts = np.bincount(shift, minlength=K)[1:]
    assert chisquare(counts).pvalue > 1e-3
    # per true class, the wrong labels spread uniformly over the K-1 others
    for c in (0, 7):
        sel = flipped & (y == c)
        counts = np.bincount(noisy[sel], minlength=K)
        assert counts[c] == 0
        assert chisquare(np.delete(counts, c)).pvalue > 1e-3
    # which examples are flipped does not depend on their class
    flips_per_class = np.bincount(y[flipped], minlength=K)
    expected = np.bincount(y, minlength=K) * flipped.mean()
    assert chisquare(flips_per_class, expected).pvalue > 1e-3


def test_pairflip_goes_to_next_class():
    y = _labels(5000)
    noisy = ln.pairflip_noise(y, 0.3, K, seed=0)
    flipped = noisy != y
    np.testing.assert_array_equal(noisy[flipped], (y[flipped] + 1) % K)
    assert set(np.unique(y[flipped])) == set(range(K))  # K-1 -> 0 wraps around too


def test_seeded():
    y = _labels(1000)
    for fn in (ln.symmetric_noise, ln.pairflip_noise):
        np.testing.assert_array_equal(fn(y, 0.2, K, seed=5), fn(y, 0.2, K, seed=5))
        assert not np.array_equal(fn(y, 0.2, K, seed=5), fn(y, 0.2, K, seed=6))
    np.testing.assert_array_equal(y, _labels(1000))  # input untouched


def test_inject_dispatch_and_errors():
    y = _labels(100)
    np.testing.assert_array_equal(ln.inject(y, "none", 0.0, K, 0), y)
    np.testing.assert_array_equal(ln.inject(y, "symmetric", 0.0, K, 0), y)
    np.testing.assert_array_equal(ln.inject(y, "pairflip", 0.2, K, 4), ln.pairflip_noise(y, 0.2, K, 4))
    np.testing.assert_array_equal(ln.inject(y, "symmetric", 0.2, K, 4), ln.symmetric_noise(y, 0.2, K, 4))
    with pytest.raises(ConfigError, match="symmetric"):
        ln.inject(y, "gaussian", 0.2, K, 0)
    for bad in (1.0, -0.1):
        with pytest.raises(ConfigError, match=r"\[0, 1\)"):
            ln.symmetric_noise(y, bad, K, 0)
    with pytest.raises(ConfigError):
        ln.symmetric_noise(y, 0.1, 5, 0)  # labels outside [0, 5)


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_uniform_noise_on_two_classes_makes_half_the_rate_wrong(rate):
    """OpenLTH's randomisation: a chosen label is redrawn from all K classes, so on a two-class task about ε/2 of
    the labels end up wrong (seed 2's setting), where symmetric noise makes exactly ε wrong."""
    y = np.random.default_rng(5).integers(0, 2, 20_000).astype(np.int64)
    noisy = ln.uniform_noise(y, rate, 2, seed=11)
    wrong = float((noisy != y).mean())
    assert abs(wrong - rate / 2) <= 0.01
    assert ln.expected_wrong_fraction("uniform", rate, 2) == pytest.approx(rate / 2)
    assert float((ln.symmetric_noise(y, rate, 2, seed=11) != y).mean()) == pytest.approx(rate, abs=1e-4)


def test_uniform_noise_is_exact_seeded_and_uniform_over_all_classes():
    y = _labels(100_000)
    noisy = ln.inject(y, "uniform", 0.4, K, seed=7)
    assert np.array_equal(noisy, ln.uniform_noise(y, 0.4, K, seed=7))           # seeded: same draw
    assert not np.array_equal(noisy, ln.uniform_noise(y, 0.4, K, seed=8))
    wrong = float((noisy != y).mean())
    assert wrong == pytest.approx(0.4 * (K - 1) / K, abs=0.005)                  # ≈ ε·(K−1)/K
    # the redrawn labels (exactly round(εN) positions) are uniform over all K classes, their own included
    rng = np.random.default_rng(7)
    pos = rng.choice(y.size, size=round(0.4 * y.size), replace=False)
    assert np.array_equal(np.delete(noisy, pos), np.delete(y, pos))             # nothing else changes
    assert chisquare(np.bincount(noisy[pos], minlength=K)).pvalue > 1e-3
    assert ln.expected_wrong_fraction("symmetric", 0.4, K) == 0.4
