"""Width families of a sweep: grouping by everything but width and seed, seed 2 Table 1 numbers per width."""
import pathlib

import pytest

from keras_sdd.analysis import widths
from keras_sdd.analysis.replicates import StudyRecord


def record(task, width, seed, test, nonzero, val=None):
    rows = [{"round": k, "sparsity": 1 - 0.8 ** k, "test_accuracy": t, "val_accuracy": (val or test)[k],
             "nonzero_params": n, "remaining_params": n} for k, (t, n) in enumerate(zip(test, nonzero))]
    config = {"study": "sdd", "model": "fcn", "dataset": "gaussian_mixture", "gmm_task": task, "width": width,
              "seed": seed, "noise_rate": 0.2, "logdir": f"/x/{task}/{width}/{seed}"}
    return StudyRecord(pathlib.Path(config["logdir"]), config, rows)


def test_families_and_width_rows():
    recs = [record("linear", 50, 0, [0.80, 0.70, 0.85], [1000, 500, 250]),
            record("linear", 50, 1, [0.82, 0.72, 0.86], [1000, 500, 300]),
            record("linear", 100, 0, [0.78, 0.84, 0.80], [2000, 1000, 400]),
            record("xor", 50, 0, [0.70, 0.75, 0.60], [1000, 600, 300]),
            record("xor", 100, 0, [0.72, 0.71, 0.79], [2000, 1000, 700])]
    fams = widths.families(recs)
    assert [f["label"] for f in fams] == ["gmm_task=linear", "gmm_task=xor"]
    assert list(fams[0]["widths"]) == [50, 100] and len(fams[0]["widths"][50]) == 2
    rows = widths.width_rows(fams[0])
    w50, w100 = rows
    assert w50["best_params_test_chosen"]["mean"] == pytest.approx(275) and w50["best_params_test_chosen"]["n"] == 2
    assert w50["best_test_error_test_chosen"]["mean"] == pytest.approx(1 - 0.855)
    assert w50["full_test_error"]["mean"] == pytest.approx(0.19)
    assert w100["best_params_test_chosen"]["mean"] == 1000 and w100["full_params"]["mean"] == 2000
    assert widths.best_small_dense(fams[1]).config["width"] == 100     # the better dense model of the family
    assert widths.double_descent_png(fams[0])[:4] == b"\x89PNG"
    assert "| gmm_task=linear | 50 | 1,000 ± 0 | 0.190 ± 0.010 | 275 ± 25 | 0.145 ± 0.005 | 0,1 |" in widths.markdown(rows)


def test_a_single_width_is_no_family():
    assert widths.families([record("linear", 50, s, [0.8, 0.7, 0.9], [10, 5, 2]) for s in (0, 1)]) == []
