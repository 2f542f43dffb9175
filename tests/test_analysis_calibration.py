"""Calibration numbers on a hand-made prediction set, checked against hand computation and a plain loop."""
import numpy as np
import pytest

from keras_sdd.analysis import calibration as cal

# 6 predictions, 3 classes; confidences 0.9, 0.6, 0.5, 0.8, 0.4, 1.0 with 3 bins: (0,1/3], (1/3,2/3], (2/3,1].
P = np.array([[0.9, 0.05, 0.05], [0.2, 0.6, 0.2], [0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.4, 0.3, 0.3],
              [0.0, 1.0, 0.0]])
Y = np.array([0, 2, 0, 2, 1, 1])


def test_ece_by_hand():
    # bin (1/3,2/3]: conf 0.6, 0.5, 0.4 -> mean 0.5; correct: no, yes, no -> 1/3.  |1/3 - 0.5| = 1/6, weight 3/6
    # bin (2/3,1]: conf 0.9, 0.8, 1.0 -> 0.9; all correct -> 1.0.  |1 - 0.9| = 0.1, weight 3/6
    assert cal.ece(P, Y, bins=3) == pytest.approx(0.5 * (1 / 6) + 0.5 * 0.1)
    r = cal.reliability(P, Y, bins=3)
    assert list(r.count) == [0, 3, 3] and np.isnan(r.accuracy[0])
    np.testing.assert_allclose(r.confidence[1:], [0.5, 0.9])


def test_bin_edges_go_to_the_lower_bin():
    # two bins (0, 0.5] and (0.5, 1]: a confidence of exactly 0.5 belongs to the lower one
    p = np.array([[0.5, 0.5], [0.5 + 1e-9, 0.5 - 1e-9], [0.0, 1.0]])
    assert list(cal.reliability(p, np.array([0, 1, 1]), bins=2).count) == [1, 2]


def test_nll_brier_and_bayes_gap_by_hand():
    assert cal.nll(P, Y) == pytest.approx(-np.mean(np.log([0.9, 0.2, 0.5, 0.8, 0.3, 1.0])))
    brier = np.mean([0.1**2 + 2 * 0.05**2, 0.2**2 + 0.6**2 + 0.8**2, 0.5**2 + 0.3**2 + 0.2**2,
                     0.1**2 + 0.1**2 + 0.2**2, 0.4**2 + 0.7**2 + 0.3**2, 0.0])
    assert cal.brier(P, Y) == pytest.approx(brier)
    p2 = np.array([[0.3, 0.7], [0.9, 0.1]])
    bayes = np.array([[0.4, 0.6], [0.5, 0.5]])
    assert cal.bayes_gap(p2, bayes) == pytest.approx((0.1 + 0.4) / 2)


def _loop_ece(probs, labels, bins):
    """An independent, straightforward implementation (no reference package installs beside the pins)."""
    total, n = 0.0, len(labels)
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [i for i in range(n) if (lo < probs[i].max() <= hi) or (b == 0 and probs[i].max() == 0)]
        if members:
            acc = np.mean([probs[i].argmax() == labels[i] for i in members])
            conf = np.mean([probs[i].max() for i in members])
            total += len(members) / n * abs(acc - conf)
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ece_equals_a_plain_loop_on_random_predictions(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(500, 4)) * 3
    labels = rng.integers(0, 4, 500)
    probs = cal.softmax(logits)
    assert cal.ece(probs, labels, 15) == pytest.approx(_loop_ece(probs, labels, 15), abs=1e-12)


def test_calibration_metrics_row():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 2))
    y = rng.integers(0, 2, 50)
    y_noisy = np.where(rng.random(50) < 0.2, 1 - y, y)
    bayes = cal.softmax(rng.normal(size=(50, 2)))
    row = cal.calibration_metrics(logits, y, y_noisy, 10, bayes)
    assert set(row) == set(cal.COLUMNS)
    p = cal.softmax(logits)
    assert row["ece_noisy"] == cal.ece(p, y_noisy, 10) and row["ece_clean"] == cal.ece(p, y, 10)
    assert row["bayes_gap"] == cal.bayes_gap(p, bayes)
    assert np.isnan(cal.calibration_metrics(rng.normal(size=(5, 3)), y[:5], y[:5])["bayes_gap"])
