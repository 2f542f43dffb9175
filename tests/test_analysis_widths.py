"""Width families of a sweep: grouping by everything but width and seed, seed 2 Table 1 numbers per width, effective
parameters against another setting, and the figures (PNG, drawn without pyplot)."""
import pathlib
import sys

import pytest

from keras_sdd.analysis import widths
from keras_sdd.analysis.replicates import StudyRecord


def record(task, width, seed, test, nonzero, val=None, nu=0.9, hidden=None):
    rows = [{"round": k, "sparsity": 1 - 0.8 ** k, "test_accuracy": t, "val_accuracy": (val or test)[k],
             "nonzero_params": n, "remaining_params": n} for k, (t, n) in enumerate(zip(test, nonzero))]
    config = {"study": "sdd", "model": "fcn", "dataset": "gaussian_mixture", "gmm_task": task, "width": width,
              "hidden": hidden or [], "seed": seed, "noise_rate": 0.2, "gmm_bayes_accuracy": nu,
              "logdir": f"/x/{task}/{width}/{seed}/{nu}"}
    return StudyRecord(pathlib.Path(config["logdir"]), config, rows)


RECORDS = [record("linear", 100.0, 0, [0.78, 0.84, 0.80], [2000, 1000, 400]),     # listed before the narrower
           record("linear", 50.0, 0, [0.80, 0.70, 0.85], [1000, 500, 250]),
           record("linear", 50.0, 1, [0.82, 0.72, 0.86], [1000, 500, 300]),
           record("xor", 50.0, 0, [0.70, 0.75, 0.60], [1000, 600, 300]),
           record("xor", 100.0, 0, [0.72, 0.71, 0.79], [2000, 1000, 700])]


def test_families_and_width_rows():
    fams = widths.families(RECORDS)
    assert [f["label"] for f in fams] == ["gmm_task=linear", "gmm_task=xor"]
    assert list(fams[0]["widths"]) == [50, 100] and len(fams[0]["widths"][50]) == 2   # by dense parameters
    w50, w100 = widths.width_rows(fams[0])
    assert w50["best_params_test_chosen"]["mean"] == pytest.approx(275) and w50["best_params_test_chosen"]["n"] == 2
    assert w50["best_test_error_test_chosen"]["mean"] == pytest.approx(1 - 0.855)
    assert w50["full_test_error"]["mean"] == pytest.approx(0.19)
    assert w100["best_params_test_chosen"]["mean"] == 1000 and w100["full_params"]["mean"] == 2000
    assert widths.best_small_dense(fams[1]).config["width"] == 100     # the better dense model of the family
    assert ("| gmm_task=linear | 50 | 1,000 ± 0 | 0.190 ± 0.010 | 275 ± 25 | 0.145 ± 0.005 | 275 ± 25 | 0.145 ± 0.005 "
            "| 0,1 |") in widths.markdown(widths.width_rows(fams[0]))


def test_figures_are_png_and_never_touch_pyplot():
    had_pyplot = "matplotlib.pyplot" in sys.modules      # another test may have loaded it; these must not
    fams = widths.families(RECORDS)
    assert widths.double_descent_png(fams[0])[:4] == b"\x89PNG"
    assert widths.effective_params_png(fams)[:4] == b"\x89PNG"
    assert had_pyplot or "matplotlib.pyplot" not in sys.modules


def test_hidden_widths_make_a_family_ordered_by_parameters():
    recs = [record("linear", None, 0, [0.8, 0.9], [45200, 6000], hidden=[50, 100]),
            record("linear", None, 0, [0.8, 0.9], [8841000, 17000], hidden=[10000, 100]),
            record("linear", None, 0, [0.8, 0.9], [266200, 6000], hidden=[300, 100])]
    (fam,) = widths.families(recs)
    assert list(fam["widths"]) == ["50-100", "300-100", "10000-100"]


def test_effective_params_against_another_setting():
    recs = [record(task, 1000.0, s, [0.7, 0.9, 0.8], [10000, 500 * (1 + (task == "xor")) + 100 * nu_i + s, 100],
                   nu=nu) for task in ("linear", "xor") for nu_i, nu in enumerate((0.8, 0.9)) for s in (0, 1)]
    assert widths.varying_settings(recs) == ["gmm_bayes_accuracy", "gmm_task"]
    lines = widths.effective_params_vs(recs, "gmm_bayes_accuracy")
    assert [ln["label"] for ln in lines] == ["gmm_task=linear", "gmm_task=xor"]
    linear = lines[0]["points"]
    assert [p["value"] for p in linear] == [0.8, 0.9]
    assert linear[0]["effective_params"]["mean"] == pytest.approx(500.5) and linear[0]["seeds"] == [0, 1]
    assert lines[1]["points"][1]["effective_params"]["mean"] == pytest.approx(1100.5)
    assert widths.effective_params_vs_png(recs, "gmm_bayes_accuracy")[:4] == b"\x89PNG"
    assert widths.effective_params_vs_png(recs, "noise_rate") is None          # it does not vary


def test_a_single_width_is_no_family():
    assert widths.families([record("linear", 50, s, [0.8, 0.7, 0.9], [10, 5, 2]) for s in (0, 1)]) == []


def test_replicate_groups_are_labelled_by_the_settings_they_differ_in():
    """Two tasks at the same width are two groups, each named by task and width (not by settings they share)."""
    from keras_sdd.analysis import replicates

    groups = replicates.group(RECORDS)
    assert [(g.label, sorted(m.config["seed"] for m in g.members)) for g in groups] == [
        ("vanilla IMP [gmm_task=linear width=100]", [0]), ("vanilla IMP [gmm_task=linear width=50]", [0, 1]),
        ("vanilla IMP [gmm_task=xor width=50]", [0]), ("vanilla IMP [gmm_task=xor width=100]", [0])]
    assert [g.label for g in replicates.group(RECORDS[1:3])] == ["vanilla IMP"]     # one group: no suffix
