"""--mixed_precision and --jit_compile: pruned models train and keep their exact sparsity, also with distillation."""
import pathlib

import numpy as np
import pytest

from keras_sdd import ConfigError
from keras_sdd.config import StudyConfig
from keras_sdd.pruning import tfmot_bridge
from keras_sdd.study import loading, runner
from keras_sdd.study.records import read_rounds

TINY = dict(dataset="gaussian_mixture", gmm_dim=10, gmm_train_size=400, gmm_test_size=300, noise_rate=0.2,
            model="fcn", width=16, depth=1, epochs=2, batch_size=64, optimizer="adam", learning_rate=0.01,
            lr_schedule="cosine", prune_fraction=0.5, max_rounds=2, checkpoint_every_secs=0.0, threads=1,
            track_energy=False, steps_per_execution=2)


def _exactly_sparse(root: pathlib.Path):
    rows = read_rounds(root)
    for k, row in enumerate(rows):
        assert abs(row["pruned_params"] - row["target_sparsity"] * row["prunable_params"]) <= 1
        model = loading.load_round(root, k).model
        weights, masks = tfmot_bridge.get_weights(model), tfmot_bridge.get_masks(model)
        assert all(w.dtype == np.float32 for w in weights.values())             # variables stay float32
        assert all(np.all(weights[key][masks[key] == 0] == 0) for key in weights)
        assert sum(int(np.sum(w == 0)) for w in weights.values()) >= row["pruned_params"]
    return rows


@pytest.mark.parametrize("mixed, jit", [("bfloat16", True), ("float16", False)])
def test_mixed_precision_and_xla_keep_exact_sparsity(tmp_path, mixed, jit):
    config = StudyConfig(**{**TINY, "logdir": str(tmp_path / "s"), "mixed_precision": mixed, "jit_compile": jit})
    summary = runner.run_study(config)
    rows = _exactly_sparse(tmp_path / "s")
    assert summary["complete"] and [round(r["sparsity"], 3) for r in rows] == [0.0, 0.5, 0.75]
    assert all(0.3 < r["test_accuracy"] <= 1.0 for r in rows)


def test_mixed_precision_distillation(tmp_path):
    teacher = StudyConfig(**{**TINY, "logdir": str(tmp_path / "t"), "max_rounds": 1})
    runner.run_study(teacher)
    config = StudyConfig(**{**TINY, "study": "kd", "teacher": str(tmp_path / "t"), "logdir": str(tmp_path / "kd"),
                            "mixed_precision": "float16", "jit_compile": True})
    assert runner.run_study(config)["complete"]
    _exactly_sparse(tmp_path / "kd")


def test_gradual_methods_refuse_mixed_precision(tmp_path):
    config = StudyConfig(**{**TINY, "logdir": str(tmp_path / "s"), "mixed_precision": "float16",
                            "prune_method": "tfmot_constant"})
    with pytest.raises(ConfigError, match="breaks under mixed precision"):
        runner.run_study(config)
