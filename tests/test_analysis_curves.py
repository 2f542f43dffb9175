"""Curve analysis on made-up curves: SDD detection, phases, best pruned model, effective parameters, early stop."""
import pytest

from keras_sdd.analysis import curves


def rows(test, val=None, train=None, sparsity=None, **cols):
    n = len(test)
    sparsity = sparsity or [1 - 0.8 ** k for k in range(n)]
    out = []
    for k in range(n):
        r = {"round": k, "sparsity": sparsity[k], "test_accuracy": test[k],
             "val_accuracy": (val or test)[k], "train_noisy_accuracy": (train or [1.0] * n)[k],
             "remaining_params": 1000 - 30 * k}
        r.update({c: v[k] for c, v in cols.items()})
        out.append(r)
    return out


SDD = rows([0.75, 0.745, 0.70, 0.68, 0.72, 0.80, 0.83, 0.81, 0.60, 0.40],
           train=[0.99, 1.0, 1.0, 0.95, 0.90, 0.80, 0.74, 0.70, 0.60, 0.40])


def test_sdd_found_on_a_non_monotone_curve():
    r = curves.detect_sdd(SDD, margin=0.01)
    assert r.found and r.dip_round == 3 and r.peak_round == 6
    assert r.dip_accuracy == 0.68 and r.peak_accuracy == 0.83 and r.dense_accuracy == 0.75


@pytest.mark.parametrize("test", [
    [0.80, 0.80, 0.79, 0.78, 0.70, 0.50],          # monotone decline
    [0.70, 0.72, 0.75, 0.78, 0.80, 0.81],          # monotone rise
    [0.80, 0.795, 0.80, 0.79, 0.60],               # wiggle below the margin
])
def test_no_sdd_on_monotone_curves(test):
    assert not curves.detect_sdd(rows(test), margin=0.01).found


def test_phases():
    p = curves.phases(SDD, margin=0.01)
    s = [r["sparsity"] for r in SDD]
    # phase 2 where test first falls a margin below dense (round 2; train drops later), phase 3 at the dip,
    # phase 4 from round 7 on (0.81: a margin below the 0.83 peak, never recovered)
    assert p == {"phase1": 0.0, "phase2": s[2], "phase3": s[3], "phase4": s[7]}


def test_phase4_needs_train_and_test_to_collapse_together():
    test = [0.75, 0.745, 0.70, 0.68, 0.72, 0.80, 0.83, 0.81, 0.60, 0.40]
    held = rows(test, train=[0.99, 1.0, 1.0, 0.95, 0.90, 0.80, 0.74, 0.74, 0.735, 0.70])
    s = [r["sparsity"] for r in held]
    # test falls from round 7, but train accuracy holds until round 9: the collapse starts there
    assert curves.phases(held, margin=0.01)["phase4"] == s[9]
    never = rows(test, train=[0.99, 1.0, 1.0, 0.95, 0.90, 0.80, 0.74, 0.74, 0.74, 0.74])
    assert curves.phases(never, margin=0.01)["phase4"] is None
    unknown = [{**r, "train_noisy_accuracy": None} for r in held]   # no train accuracy: test alone decides
    assert curves.phases(unknown, margin=0.01)["phase4"] == s[7]


def test_best_pruned_and_effective_parameters():
    data = rows([0.7, 0.8, 0.9, 0.85], val=[0.6, 0.75, 0.7, 0.72], nonzero_params=[900, 500, 200, 100])
    best = curves.best_pruned(data)
    assert best["test_chosen"]["round"] == 2 and best["test_chosen"]["effective_params"] == 200
    assert best["test_chosen"]["test_error"] == pytest.approx(0.1)
    assert best["val_chosen"]["round"] == 1 and best["val_chosen"]["effective_params_column"] == "nonzero_params"
    old = rows([0.7, 0.8])                           # an old study: no nonzero_params column
    assert curves.effective_params(old[1]) == {"value": 970, "column": "remaining_params"}
    # seed 2's count (kernels only) wins over the all-weights count wherever a study recorded it
    new = rows([0.7, 0.8], nonzero_params=[900, 500], nonzero_weights=[850, 470])
    assert curves.effective_params(new[1]) == {"value": 470, "column": "nonzero_weights"}
    assert curves.best_pruned(new)["test_chosen"]["effective_params_column"] == "nonzero_weights"


def test_early_stop_fires_with_patience_and_tolerance():
    val = [0.70, 0.72, 0.71, 0.69, 0.68, 0.75, 0.60]
    data = rows(val, train_flops_cum=[1.0 * (k + 1) for k in range(7)], co2_g_cum=[2.0 * (k + 1) for k in range(7)])
    fired = curves.early_stop(data, patience=2, tolerance=0.02)
    # round 3 (0.69) and round 4 (0.68) are both > 0.02 below the best 0.72: fires at round 4, keeps round 1
    assert fired["fired"] and fired["stop_round"] == 4 and fired["kept_round"] == 1
    # charged up to the round it reports (seed 1's tables), and separately what it trained (up to round 4)
    assert fired["train_flops_cum"] == 2.0 and fired["co2_g_cum"] == 4.0 and fired["test_accuracy"] == 0.72
    assert fired["train_flops_cum_trained"] == 5.0 and fired["co2_g_cum_trained"] == 10.0
    assert not curves.early_stop(data, patience=3, tolerance=0.02)["fired"]          # round 5 recovers
    assert curves.early_stop(data, patience=1, tolerance=0.0)["stop_round"] == 2      # 0.71 < 0.72
    none = curves.early_stop(rows([0.7, 0.71, 0.72]), patience=1)
    assert not none["fired"] and none["kept_round"] == 2 and none["train_flops_cum"] is None


def test_live_rule_equals_offline_rule():
    rule = curves.EarlyStopping(patience=2, tolerance=0.02)
    fired = [rule.update(v) for v in [0.70, 0.72, 0.71, 0.69, 0.68]]
    assert fired == [False, False, False, False, True] and rule.best_round == 1 and "round 4" in rule.reason
