"""load_round / load_best: a finished round rebuilt from its study directory, read only, reproduces its record."""
import hashlib
import pathlib

import numpy as np
import pytest

from keras_sdd import ConfigError
from keras_sdd.config import StudyConfig
from keras_sdd.pruning import tfmot_bridge
from keras_sdd.study import loading, runner
from keras_sdd.study.evaluate import logits_of, metrics_of
from keras_sdd import data

TINY = dict(dataset="gaussian_mixture", gmm_dim=10, gmm_train_size=400, gmm_test_size=300, noise_rate=0.2,
            model="fcn", width=16, depth=1, epochs=3, batch_size=64, optimizer="adam", learning_rate=0.01,
            lr_schedule="cosine", prune_fraction=0.5, max_rounds=3, checkpoint_every_secs=0.0)


def digest(root: pathlib.Path):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    config = StudyConfig(**{**TINY, "logdir": str(tmp_path_factory.mktemp("l") / "study")})
    runner.run_study(config)
    return config


@pytest.mark.parametrize("k", [0, 2, 3])
def test_load_round_reproduces_recorded_test_accuracy(study, k):
    root = pathlib.Path(study.logdir)
    before = digest(root)
    loaded = loading.load_round(root, k)
    bundle = data.load(study.dataset, **study.data_options())
    test = metrics_of(logits_of(loaded.model, bundle, "test", 256), bundle.test)
    assert test["clean_accuracy"] == loaded.row["test_accuracy"]        # exactly what the study recorded
    assert test["clean_loss"] == pytest.approx(loaded.row["test_loss"], rel=1e-6)
    report = tfmot_bridge.sparsity_report(loaded.model)
    assert report.pruned == loaded.row["pruned_params"]
    assert digest(root) == before                                       # nothing written


def test_stripped_round_is_exactly_sparse(study):
    loaded = loading.load_round(study.logdir, 3, strip=True)
    assert not tfmot_bridge.wrappers(loaded.model)
    kernels = [layer.kernel.numpy() for layer in loaded.model.layers if hasattr(layer, "kernel")]
    zeros = sum(int(np.sum(k == 0)) for k in kernels)
    assert zeros == loaded.row["pruned_params"]


def test_load_best_is_highest_validation_accuracy(study):
    rows = loading.study_rows(study.logdir)[1]
    best = loading.load_best(study.logdir)
    assert best.row["val_accuracy"] == max(r["val_accuracy"] for r in rows)
    assert best.round == min(i for i, r in enumerate(rows) if r["val_accuracy"] == best.row["val_accuracy"])


def test_bad_requests_refused(study, tmp_path):
    with pytest.raises(ConfigError, match="has no round 9; it records rounds 0..3"):
        loading.load_round(study.logdir, 9)
    with pytest.raises(ConfigError, match="is not a study directory"):
        loading.load_round(tmp_path, 0)


@pytest.mark.parametrize("spec, want", [
    ("runs/t", {"path": "runs/t", "select": "dense", "round": 0}),
    ("runs/t:best", {"path": "runs/t", "select": "best", "round": None}),
    ("runs/t:round=7", {"path": "runs/t", "select": "round", "round": 7}),
    ("model.keras", {"path": "model.keras", "select": "dense", "round": 0}),
])
def test_parse_teacher(spec, want):
    assert loading.parse_teacher(spec) == want


def test_parse_teacher_refuses_bad_round():
    with pytest.raises(ConfigError, match="needs an integer"):
        loading.parse_teacher("runs/t:round=x")
