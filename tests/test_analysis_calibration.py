"""Calibration numbers on a hand-made prediction set (computed by hand here), bin edges, empty bins, and the same
numbers from an independent plain loop and, where installed, Kumar et al.'s ``uncertainty-calibration``."""
import numpy as np
import pytest

from keras_sdd.analysis import calibration as cal

# 6 predictions, 3 classes; confidences 0.9, 0.6, 0.5, 0.8, 0.4, 1.0 with 3 bins: (0,1/3], (1/3,2/3], (2/3,1].
P = np.array([[0.9, 0.05, 0.05], [0.2, 0.6, 0.2], [0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.4, 0.3, 0.3],
              [0.0, 1.0, 0.0]])
Y = np.array([0, 2, 0, 2, 1, 1])


def test_ece_and_reliability_by_hand():
    # bin (1/3,2/3]: conf 0.6, 0.5, 0.4 -> mean 0.5; correct: no, yes, no -> 1/3.  |1/3 - 0.5| = 1/6, weight 3/6
    # bin (2/3,1]: conf 0.9, 0.8, 1.0 -> 0.9; all correct -> 1.0.  |1 - 0.9| = 0.1, weight 3/6
    assert cal.ece(P, Y, bins=3) == pytest.approx(0.5 * (1 / 6) + 0.5 * 0.1, abs=1e-15)
    r = cal.reliability(P, Y, bins=3)
    assert list(r.count) == [0, 3, 3] and np.isnan(r.accuracy[0]) and np.isnan(r.confidence[0])  # empty bin
    np.testing.assert_allclose(r.confidence[1:], [0.5, 0.9])
    np.testing.assert_allclose(r.accuracy[1:], [1 / 3, 1.0])
    np.testing.assert_array_equal(r.edges, [0, 1 / 3, 2 / 3, 1])
    # one bin: |mean accuracy - mean confidence| = |4/6 - 4.2/6|
    assert cal.ece(P, Y, bins=1) == pytest.approx(0.2 / 6, abs=1e-15)


def test_a_confidence_on_a_bin_edge_goes_to_the_lower_bin():
    # two bins (0, 0.5] and (0.5, 1]: a confidence of exactly 0.5 belongs to the lower one
    p = np.array([[0.5, 0.5], [0.5 + 1e-9, 0.5 - 1e-9], [0.0, 1.0]])
    assert list(cal.reliability(p, np.array([0, 1, 1]), bins=2).count) == [1, 2]
    for bins in (3, 10, 15):
        edges = np.arange(1, bins) / bins  # every inner edge b/B lands in bin b-1; 0 in bin 0, 1 in the last
        np.testing.assert_array_equal(cal.bin_index(edges, bins), np.arange(bins - 1))
        assert list(cal.bin_index([0.0, 1.0, np.nextafter(1 / bins, 1)], bins)) == [0, bins - 1, 1]
    # 0.7 with 10 bins: in (0.6, 0.7] (the float 0.7*10 rounds up to 7.000000000000001: no ceil arithmetic here)
    assert cal.reliability(np.array([[0.7, 0.3]]), np.array([0]), bins=10).count[6] == 1


def test_empty_and_degenerate_inputs():
    empty = np.zeros((0, 3))
    assert np.isnan(cal.ece(empty, np.zeros(0, int), from_logits=False))
    assert np.isnan(cal.nll(empty, np.zeros(0, int), from_logits=False))
    assert np.isnan(cal.brier(empty, np.zeros(0, int), from_logits=False))
    perfect = np.eye(3)
    assert cal.ece(perfect, [0, 1, 2]) == 0.0 and cal.brier(perfect, [0, 1, 2]) == 0.0
    assert cal.brier(perfect, [1, 2, 0]) == 2.0  # the maximum
    with pytest.raises(ValueError):
        cal.ece(P, np.array([0, 1, 2, 3, 0, 1]))  # label 3 of 3 classes
    with pytest.raises(ValueError):
        cal.ece(P, Y[:5])
    with pytest.raises(ValueError):
        cal.reliability(P, Y, bins=0)


def test_nll_brier_and_bayes_gap_by_hand():
    assert cal.nll(P, Y) == pytest.approx(-np.mean(np.log([0.9, 0.2, 0.5, 0.8, 0.3, 1.0])), abs=1e-15)
    brier = np.mean([0.1**2 + 2 * 0.05**2, 0.2**2 + 0.6**2 + 0.8**2, 0.5**2 + 0.3**2 + 0.2**2,
                     0.1**2 + 0.1**2 + 0.2**2, 0.4**2 + 0.7**2 + 0.3**2, 0.0])
    assert cal.brier(P, Y) == pytest.approx(brier, abs=1e-15)
    p2 = np.array([[0.3, 0.7], [0.9, 0.1]])
    bayes = np.array([[0.4, 0.6], [0.5, 0.5]])
    assert cal.bayes_gap(p2, bayes) == pytest.approx((0.1 + 0.4) / 2, abs=1e-15)
    assert cal.bayes_gap(p2[:, 1], bayes[:, 1]) == pytest.approx((0.1 + 0.4) / 2, abs=1e-15)  # P(y=1|x) only
    with pytest.raises(ValueError):
        cal.bayes_gap(P, P)  # three classes


def test_logits_and_probabilities_agree():
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0], [1000.0, 0.0, -1000.0]])  # the last: stable
    y = np.array([0, 1, 0])
    p = cal.softmax(logits)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(axis=1), 1)
    # NLL from logits is exact log-sum-exp: -log p_y with p_y computed by hand for the first two rows
    by_hand = [np.log(np.exp(2) + 1 + np.exp(-1)) - 2, np.log(2 * np.exp(0.5) + np.exp(3)) - 0.5, 0.0]
    assert cal.nll(logits, y) == pytest.approx(np.mean(by_hand), abs=1e-12)
    assert cal.nll(logits, y, from_logits=True) == cal.nll(logits, y)
    assert cal.ece(logits, y, 5) == cal.ece(p, y, 5) and cal.brier(logits, y) == cal.brier(p, y)
    # float16 probabilities (saved predictions) are still recognised as probabilities
    assert cal.ece(p.astype(np.float16), y, 5) == pytest.approx(cal.ece(p, y, 5), abs=1e-3)
    assert cal.ece(P, np.eye(3)[Y], 3) == cal.ece(P, Y, 3)  # one-hot labels


def test_classwise_by_hand():
    # two classes, 2 bins.  class 0: p0 = 0.9, 0.2, 0.6, 0.4 vs y==0: 1, 0, 1, 0
    #   bin (0, .5]: 0.2, 0.4 -> conf 0.3, freq 0   -> |0 - 0.3| * 2/4
    #   bin (.5, 1]: 0.9, 0.6 -> conf 0.75, freq 1  -> |1 - 0.75| * 2/4  => 0.15 + 0.125
    # class 1: p1 = 0.1, 0.8, 0.4, 0.6 vs y==1: 0, 1, 0, 1
    #   bin (0, .5]: 0.1, 0.4 -> conf 0.25, freq 0  -> 0.125;  bin (.5, 1]: 0.8, 0.6 -> 0.7, freq 1 -> 0.15
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 1, 0, 1])
    cw = cal.classwise_reliability(p, y, 2)
    np.testing.assert_allclose(cw.per_class_ece, [0.275, 0.275])
    assert cal.classwise_ece(p, y, 2) == pytest.approx(0.275, abs=1e-15)
    avg = cw.class_averaged()
    np.testing.assert_allclose(avg.confidence, [(0.3 + 0.25) / 2, (0.75 + 0.7) / 2])
    np.testing.assert_array_equal(avg.accuracy, [0.0, 1.0])
    np.testing.assert_array_equal(avg.count, [4, 4])


def _loop_ece(probs, labels, bins):
    """An independent, straightforward implementation: per bin, the members by the interval's definition."""
    total, n = 0.0, len(labels)
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [i for i in range(n) if (lo < probs[i].max() <= hi) or (b == 0 and probs[i].max() == 0)]
        if members:
            acc = np.mean([probs[i].argmax() == labels[i] for i in members])
            conf = np.mean([probs[i].max() for i in members])
            total += len(members) / n * abs(acc - conf)
    return total


def _loop_nll_brier(probs, labels):
    nll = brier = 0.0
    for p, y in zip(probs, labels):
        nll -= np.log(p[y])
        brier += sum((p[k] - (k == y)) ** 2 for k in range(len(p)))
    return nll / len(labels), brier / len(labels)


def _random(seed, n=500, k=4, scale=3.0):
    rng = np.random.default_rng(seed)
    probs = cal.softmax(rng.normal(size=(n, k)) * scale)
    # labels drawn from the predictions themselves, then partly flipped: some miscalibration, some accuracy
    labels = np.array([rng.choice(k, p=p) for p in probs])
    flip = rng.random(n) < 0.3
    labels[flip] = rng.integers(0, k, flip.sum())
    return probs, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_to_plain_loops_on_random_predictions(seed):
    probs, labels = _random(seed)
    assert cal.ece(probs, labels, 15) == pytest.approx(_loop_ece(probs, labels, 15), abs=1e-12)
    nll, brier = _loop_nll_brier(probs, labels)
    assert cal.nll(probs, labels) == pytest.approx(nll, abs=1e-12)
    assert cal.brier(probs, labels) == pytest.approx(brier, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_equal_to_kumar_et_al_uncertainty_calibration(seed):
    """``pip install uncertainty-calibration`` (Kumar et al. 2019; imports scikit-learn): its ``get_ece`` is
    Guo et al.'s top-label ECE with the same right-closed equal-width bins, its 'marginal' mode the class-wise
    ECE. Not a dependency of the package: skipped where it is not installed."""
    reference = pytest.importorskip("calibration")
    probs, labels = _random(seed, n=400, k=5)
    for bins in (10, 15):
        assert cal.ece(probs, labels, bins) == pytest.approx(
            reference.get_ece(probs, labels, num_bins=bins), abs=1e-12)
        assert cal.classwise_ece(probs, labels, bins) == pytest.approx(
            reference.get_ece(probs, labels, num_bins=bins, mode="marginal"), abs=1e-12)


def test_calibration_metrics_row():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 2))
    y = rng.integers(0, 2, 50)
    y_noisy = np.where(rng.random(50) < 0.2, 1 - y, y)
    bayes = cal.softmax(rng.normal(size=(50, 2)))
    row = cal.calibration_metrics(logits, y, y_noisy, 10, bayes)
    assert tuple(row) == cal.COLUMNS
    p = cal.softmax(logits)
    assert row["ece_noisy"] == cal.ece(p, y_noisy, 10) and row["ece_clean"] == cal.ece(p, y, 10)
    assert row["test_nll"] == pytest.approx(cal.nll(p, y), abs=1e-12)
    assert row["test_brier"] == cal.brier(p, y)
    assert row["bayes_gap"] == cal.bayes_gap(p, bayes)
    three = cal.calibration_metrics(rng.normal(size=(5, 3)), y[:5], None)
    assert np.isnan(three["bayes_gap"]) and np.isnan(three["ece_noisy"]) and np.isfinite(three["test_nll"])
