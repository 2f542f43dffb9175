"""Exports of the image models (VGG-like, ResNet-18) and of a distillation study's student, on tiny synthetic
images: each file reproduces the recorded test accuracy and the export reports latency ratios vs the dense round."""
import pathlib

import numpy as np
import pytest

from keras_sdd.config import StudyConfig
from keras_sdd.export import plan, study_export, table
from keras_sdd.study import runner


def _images(rng, n):
    """8x8 RGB images of 3 classes: class c has a bright channel c (well separated, so few borderline cases)."""
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 90, (n, 8, 8, 3))
    x[np.arange(n), :, :, y] += 140
    return x.astype(np.uint8), y.astype(np.int64)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    rng = np.random.default_rng(0)
    (x_tr, y_tr), (x_te, y_te) = _images(rng, 600), _images(rng, 400)
    path = tmp_path_factory.mktemp("images") / "shapes.npz"
    np.savez(path, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    return path


def _study(root: pathlib.Path, images, **changes) -> pathlib.Path:
    config = StudyConfig(**{**dict(dataset="npz", data_path=str(images), noise_rate=0.2, model="vgg_like", width=2,
                                   depth=2, epochs=3, batch_size=64, optimizer="adam", learning_rate=0.01,
                                   lr_schedule="cosine", prune_fraction=0.5, max_rounds=2,
                                   checkpoint_every_secs=0.0, logdir=str(root)), **changes})
    runner.run_study(config)
    return root


@pytest.fixture(scope="module")
def vgg_study(tmp_path_factory, images):
    return _study(tmp_path_factory.mktemp("vgg") / "study", images)


def _check(study_dir, out, *, latency=False, **options):
    p = plan.plan_export(study_dir, out=out, **options)
    result = study_export.export_study(p, latency=latency, repeats=3)
    for m in (result.exported, result.dense):
        assert abs(m.test_accuracy - m.recorded_test_accuracy) <= 0.005, table.markdown(result)
    return result


def test_vgg_like_exports_and_reports_latency_ratios(vgg_study, tmp_path):
    result = _check(vgg_study, tmp_path / "vgg.tflite", latency=True, round_spec="2")
    assert result.exported.sparsity == pytest.approx(0.75, abs=0.01)
    assert result.exported.gzip_bytes < result.dense.gzip_bytes
    for b in (1, 128):
        ratio = result.ratio("latency_s", b)
        assert ratio is not None and 0 < ratio < 100
    assert "latency, batch 128 (µs per example)" in table.markdown(result)


def test_vgg_like_int8(vgg_study, tmp_path):
    result = study_export.export_study(plan.plan_export(vgg_study, "best_val", "tflite", "int8", tmp_path / "q.tflite"),
                                       latency=False)
    assert abs(result.exported.test_accuracy - result.exported.recorded_test_accuracy) <= 0.02


@pytest.mark.slow   # ~45 s on 2 shared cores (ResNet-18 training and conversion)
def test_resnet18_exports(tmp_path_factory, images, tmp_path):
    study = _study(tmp_path_factory.mktemp("resnet") / "study", images, model="resnet18", width=1 / 32, depth=None,
                   max_rounds=1, epochs=2)
    result = _check(study, tmp_path / "resnet.tflite", round_spec="1")
    assert result.exported.nonzero_entries < result.dense.nonzero_entries


def test_distillation_student_exports(tmp_path_factory, vgg_study, images, tmp_path):
    kd = _study(tmp_path_factory.mktemp("kd") / "study", images, study="kd", teacher=f"{vgg_study}:best",
                max_rounds=1, epochs=2)
    result = _check(kd, tmp_path / "student.keras", fmt="keras", round_spec="1")
    assert result.exported.gzip_bytes < result.dense.gzip_bytes


def test_mixed_precision_study_exports_in_float32(tmp_path_factory, tmp_path):
    root = tmp_path_factory.mktemp("bf16") / "study"
    runner.run_study(StudyConfig(dataset="gaussian_mixture", gmm_dim=10, gmm_train_size=500, gmm_test_size=500,
                                 noise_rate=0.2, model="fcn", width=32, depth=1, epochs=2, batch_size=64,
                                 optimizer="adam", learning_rate=0.01, lr_schedule="cosine", prune_fraction=0.5,
                                 max_rounds=2, mixed_precision="bfloat16", checkpoint_every_secs=0.0,
                                 logdir=str(root)))
    result = study_export.export_study(plan.plan_export(root, "2", "tflite", "none", tmp_path / "m.tflite"),
                                       latency=False)
    assert abs(result.exported.test_accuracy - result.exported.recorded_test_accuracy) <= 0.01   # bf16 rounding
    assert any("computed in bfloat16" in w for w in result.warnings)
