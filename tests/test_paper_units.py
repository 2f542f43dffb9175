"""Numbers in the papers' units: seed 2's effective parameters (non-zero kernel weights) and seed 1's FLOPs
convention (every round charged the dense training cost), beside keras_sdd's sparse-aware count."""
import json

import pytest

from keras_sdd.analysis import flops
from keras_sdd.study import loading, runner
from keras_sdd.study.records import read_rounds

D, W = 10, 16
KERNELS = D * W + W * 2           # the kernels of 10→16→2: seed 2's "Full" count of this network
BIASES = W + 2


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from conftest import TINY
    from keras_sdd.config import StudyConfig

    d = tmp_path_factory.mktemp("units") / "s"
    summary = runner.run_study(StudyConfig(**{**TINY, "logdir": str(d)}))
    return d, read_rounds(d), summary


def test_nonzero_weights_count_kernels_only(study):
    _, rows, _ = study
    assert rows[0]["nonzero_weights"] == KERNELS
    for r in rows:   # global magnitude pruning acts on the kernels: what it did not prune is what is left
        assert r["nonzero_weights"] == r["prunable_params"] - r["pruned_params"]
        assert r["nonzero_params"] - r["nonzero_weights"] == BIASES        # biases counted only in the other
    assert rows[-1]["nonzero_weights"] < rows[0]["nonzero_weights"] // 4


def test_dense_flops_convention(study):
    _, rows, _ = study
    n = 360                                                        # 400 points, 10 % held out for validation
    macs = KERNELS                                                 # kernel multiply-adds per example
    dense = [r["train_flops_dense"] for r in rows]
    assert len(set(dense)) == 1                                    # every round costs the same
    assert all(r["train_flops_dense"] >= r["train_flops"] for r in rows)
    assert rows[-1]["train_flops"] < 0.5 * dense[-1]               # the sparse-aware count discounts sparsity
    assert dense[0] == pytest.approx(3 * 2 * macs * n * 3, rel=0.10)
    assert rows[-1]["train_flops_dense_cum"] == pytest.approx(sum(dense))


def test_summary_effective_params_are_the_chosen_rounds_kernel_count(study):
    d, rows, summary = study
    eff = summary["effective_params"]
    for sel, by in (("val_chosen", "val_accuracy"), ("test_chosen", "test_accuracy")):
        k = loading.best_round(rows, by)
        assert eff[sel]["round"] == k and eff[sel]["value"] == rows[k]["nonzero_weights"]
        assert eff[sel]["column"] == "nonzero_weights"
    assert json.loads((d / "summary.json").read_text())["effective_params"] == eff
    assert summary["train_flops_total"]["dense (seed 1)"] == pytest.approx(rows[-1]["train_flops_dense_cum"])


def test_distillation_charges_a_pruned_teacher_at_its_sparse_cost(study, tmp_path):
    from conftest import TINY
    from keras_sdd.config import StudyConfig

    d, rows, _ = study
    runner.run_study(StudyConfig(**{**TINY, "study": "kd", "teacher": f"{d}:round=3", "max_rounds": 1,
                                    "logdir": str(tmp_path / "kd")}))
    kd = read_rounds(tmp_path / "kd")
    teacher = loading.load_round(d, 3, strip=True).model
    sparse = flops.inference_flops(teacher, flops.densities_from_zeros(teacher))
    assert sparse < 0.3 * flops.inference_flops(teacher, {})
    n, epochs = 360, 3
    student = kd[0]["inference_flops"]
    # cached teacher logits (no augmentation): the teacher's sparse forward once, in round 0 only
    assert kd[0]["train_flops"] == pytest.approx(3 * student * n * epochs + sparse * n)
    assert kd[1]["train_flops"] == pytest.approx(3 * kd[1]["inference_flops"] * n * epochs)
    assert kd[0]["train_flops_dense"] == rows[0]["train_flops_dense"]   # seed 1 charges no teacher
