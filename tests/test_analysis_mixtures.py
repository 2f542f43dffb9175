"""Seed 2 Fig. 3a numbers on made-up studies: XOR ÷ linear effective parameters paired by separation and seed."""
import pathlib

import pytest

from keras_sdd.analysis import mixtures
from keras_sdd.analysis.replicates import StudyRecord


def record(task, nu, seed, dense, best, weights, best_round=2):
    """A three-round study: dense accuracy, then the best pruned accuracy at ``best_round`` (val = test)."""
    acc = [dense, dense - 0.02, dense - 0.02]
    acc[best_round] = best
    rows = [{"round": k, "test_accuracy": a, "val_accuracy": a, "nonzero_weights": w,
             "sparsity": 1 - w / weights[0]} for k, (a, w) in enumerate(zip(acc, weights))]
    config = {"dataset": "gaussian_mixture", "gmm_task": task, "gmm_nu": nu, "seed": seed, "width": 100}
    return StudyRecord(pathlib.Path(f"/x/{task}{nu}{seed}"), config, rows,
                       {"dataset": {"extras": {"nu": nu}}})


def test_ratio_per_seed_then_averaged_and_beats_dense_flag():
    recs = [record("linear", 4.0, 0, 0.80, 0.90, [10000, 800, 400]),
            record("linear", 4.0, 1, 0.80, 0.92, [10000, 800, 500]),
            record("xor", 4.0, 0, 0.75, 0.85, [10000, 1000, 1000], best_round=1),
            record("xor", 4.0, 1, 0.75, 0.70, [10000, 3000, 1500], best_round=2),   # pruning never beats dense
            record("linear", 3.0, 0, 0.80, 0.90, [10000, 800, 400])]                 # no XOR partner: left out
    rows = mixtures.task_ratios(recs)
    assert len(rows) == 1 and rows[0]["separation"] == "gmm_nu" and rows[0]["value"] == 4.0
    r = rows[0]
    # seed 0: XOR best is round 1 (1000) vs linear 400; seed 1: XOR best is the dense round (10000) vs 500
    assert r["ratio_test_chosen"]["mean"] == pytest.approx((1000 / 400 + 10000 / 500) / 2)
    assert r["ratio_test_chosen"]["n"] == 2
    assert r["linear"]["effective_params_test_chosen"]["mean"] == 450
    assert r["pruned_beats_dense"] == {"linear": True, "xor": True}       # means: 0.775 vs 0.75 for XOR
    table = mixtures.markdown(rows)
    assert "| gmm_nu=4 |" in table and "11.25" in table
    assert mixtures.ratio_png(rows)[:8] == b"\x89PNG\r\n\x1a\n"


def test_bayes_accuracy_separation_and_nothing_to_pair():
    recs = [record("linear", 0, 0, 0.8, 0.9, [100, 50, 20]), record("xor", 0, 0, 0.7, 0.8, [100, 60, 40])]
    for r in recs:
        r.config["gmm_bayes_accuracy"] = 0.9
    rows = mixtures.task_ratios(recs)
    assert rows[0]["separation"] == "gmm_bayes_accuracy" and rows[0]["value"] == 0.9
    assert rows[0]["ratio_test_chosen"]["mean"] == pytest.approx(2.0)
    assert mixtures.task_ratios(recs[:1]) == [] and mixtures.ratio_png([]) is None
