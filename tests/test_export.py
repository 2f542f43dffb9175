"""apps.export / keras_sdd.export on a tiny finished study: the exported file reproduces the recorded test
accuracy, sparse files are smaller than the dense round's, int8 keeps accuracy, refusals are one line with exit 2
and nothing written, writes are atomic, and the study directory is never changed."""
import hashlib
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from keras_sdd import ConfigError, data
from keras_sdd.config import StudyConfig
from keras_sdd.export import deployable, measure, plan, resolve_round, study_export, table, tflite, writer
from keras_sdd.study import runner
from keras_sdd.study import loading
from keras_sdd.study.loading import study_rows

REPO = pathlib.Path(__file__).resolve().parents[1]
#: 94 % sparse after 4 rounds of halving; a few seconds on a CPU.
TINY = dict(dataset="gaussian_mixture", gmm_dim=20, gmm_train_size=1000, gmm_test_size=1000, noise_rate=0.2,
            model="fcn", width=64, depth=1, epochs=4, batch_size=64, optimizer="adam", learning_rate=0.01,
            lr_schedule="cosine", prune_fraction=0.5, max_rounds=4, checkpoint_every_secs=0.0)


def digest(root: pathlib.Path):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    config = StudyConfig(**{**TINY, "logdir": str(tmp_path_factory.mktemp("export") / "study")})
    runner.run_study(config)
    return pathlib.Path(config.logdir)


@pytest.fixture(scope="module")
def study_digest(study):
    return digest(study)


@pytest.fixture(scope="module")
def bundle(study):
    config, _ = study_rows(study)
    return data.load(config.dataset, **config.data_options())


def _export(study, out, bundle, **kwargs):
    options = {k: kwargs.pop(k) for k in ("round_spec", "fmt", "quantize") if k in kwargs}
    plan = study_export.plan_export(study, out=out, **options)
    return study_export.export_study(plan, bundle=bundle, **{"latency": False, **kwargs})


def test_tflite_reproduces_recorded_accuracy_and_is_smaller(study, study_digest, bundle, tmp_path):
    out = tmp_path / "best.tflite"
    result = _export(study, out, bundle, latency=True, repeats=3)
    rows = study_rows(study)[1]
    assert result.exported.round == resolve_round("best_val", rows) and result.dense.round == 0
    for m in (result.exported, result.dense):
        assert abs(m.test_accuracy - m.recorded_test_accuracy) <= 0.005
        assert m.other_runtime_accuracy == pytest.approx(m.test_accuracy, abs=0.005)
        assert m.nonzero_entries == m.remaining_params         # the file's model holds exactly the kept weights
        assert set(m.latency_s) == {1, 128} and all(0 < t < 1 for t in m.latency_s.values())
    assert result.exported.sparsity > 0.5
    assert result.exported.gzip_bytes < result.dense.gzip_bytes
    assert result.exported.size_bytes < result.dense.size_bytes
    assert out.stat().st_size == result.exported.size_bytes
    assert sorted(os.listdir(tmp_path)) == ["best.tflite"]       # no temporary left beside it
    # the file alone (raw inputs, normalisation inside) gives the recorded accuracy
    logits = tflite.TFLiteRunner(out.read_bytes())(np.asarray(bundle.test.x, np.float32))
    assert np.mean(np.argmax(logits, 1) == bundle.test.y_clean) == pytest.approx(result.exported.test_accuracy)
    text = table.markdown(result)
    assert "| gzip size (bytes) |" in text and "latency, batch 128" in text
    assert f"{result.ratio('gzip_bytes'):.3f}" in text
    assert digest(study) == study_digest


def test_int8_keeps_accuracy_within_two_points(study, study_digest, bundle, tmp_path):
    result = _export(study, tmp_path / "int8.tflite", bundle, quantize="int8")
    e = result.exported
    assert abs(e.test_accuracy - e.recorded_test_accuracy) <= 0.02
    assert e.gzip_bytes < result.dense.gzip_bytes
    interp = tflite.interpreter((tmp_path / "int8.tflite").read_bytes(), 1, "builtin")
    assert any(d["dtype"] == np.int8 for d in interp.get_tensor_details())     # really quantized
    assert digest(study) == study_digest


def test_representative_inputs_follow_the_seed(bundle):
    a, b = deployable.representative_inputs(bundle, 0, 50), deployable.representative_inputs(bundle, 0, 50)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (50, 20)
    assert not np.array_equal(a, deployable.representative_inputs(bundle, 1, 50))


@pytest.mark.parametrize("fmt, name", [("keras", "m.keras"), ("saved_model", "m_saved")])
def test_keras_and_saved_model_reproduce_recorded_accuracy(study, study_digest, bundle, tmp_path, fmt, name):
    result = _export(study, tmp_path / name, bundle, fmt=fmt, round_spec="best_test")
    for m in (result.exported, result.dense):
        assert abs(m.test_accuracy - m.recorded_test_accuracy) <= 0.005
    assert result.exported.gzip_bytes < result.dense.gzip_bytes
    assert (tmp_path / name).exists() and sorted(os.listdir(tmp_path)) == [name]
    assert digest(study) == study_digest


def test_round_choices():
    rows = [{"val_accuracy": 0.5, "test_accuracy": 0.9}, {"val_accuracy": 0.7, "test_accuracy": 0.6},
            {"val_accuracy": 0.7, "test_accuracy": 0.95}]
    assert resolve_round("best_val", rows) == 1 and resolve_round("best_test", rows) == 2
    assert resolve_round("2", rows) == 2 and resolve_round(0, rows) == 0
    assert resolve_round("best_val", rows) == loading.best_round(rows, "val_accuracy")   # one rule
    for bad in ("3", "-1", "best", ""):
        with pytest.raises(ConfigError, match="--round="):
            resolve_round(bad, rows)


def test_out_and_option_checks(study, tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "exists").mkdir()
    for out, fmt, match in [(tmp_path / "file" / "a.tflite", "tflite", "not an existing folder"),
                            (study / "a.tflite", "tflite", "inside the study directory"),
                            (tmp_path / "exists", "tflite", "is a folder"),
                            (tmp_path / "exists", "saved_model", "never written over"),
                            (tmp_path / "a.h5", "keras", r"\*\.keras"), ("", "tflite", "--out must name")]:
        with pytest.raises(ConfigError, match=match):
            plan.check_out(out, fmt, study)
    with pytest.raises(ConfigError, match="applies to --format=tflite only"):
        plan.check_options("keras", "int8")
    assert plan.check_out(tmp_path / "file", "tflite", study) == tmp_path / "file"   # a file is replaced


class _Svd(tf_keras.layers.Layer):
    """A layer whose op (Svd) has no TFLite builtin kernel and whose class is not registered with Keras."""

    def call(self, x):
        return tf.reshape(tf.linalg.svd(tf.reshape(x, (-1, 2, 2)), compute_uv=False), (-1, 2))


def _svd_model():
    x = tf_keras.Input((4,))
    h = _Svd(name="odd_svd")(tf_keras.layers.Dense(4, name="dense_in")(x))
    return tf_keras.Model(x, tf_keras.layers.Dense(2, name="logits")(h))


@pytest.mark.parametrize("fmt, name", [("tflite", "m.tflite"), ("keras", "m.keras")])
def test_refuses_what_it_cannot_export_naming_the_layer(tmp_path, fmt, name):
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(writer.ExportRefused, match=rf"layer 'odd_svd' \(_Svd\) cannot be exported as {fmt}: "):
        writer.export_model(_svd_model(), tmp_path / name, fmt)
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]


def test_saved_model_carries_a_custom_layer_as_its_graph(tmp_path):
    model = _svd_model()
    writer.export_model(model, tmp_path / "m", "saved_model")        # the graph holds the op: loads back
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(measure.runner_for(tmp_path / "m", "saved_model")(x), model(x).numpy(), atol=1e-5)


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    out = tmp_path / "m.tflite"
    out.write_bytes(b"previous export")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(writer.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        writer.write_bytes(out, b"x" * 1000)
    assert out.read_bytes() == b"previous export" and sorted(os.listdir(tmp_path)) == ["m.tflite"]
    monkeypatch.undo()
    writer.write_bytes(out, b"new")
    assert out.read_bytes() == b"new" and sorted(os.listdir(tmp_path)) == ["m.tflite"]


def test_unwrapped_check_names_a_remaining_wrapper():
    from keras_sdd.pruning import tfmot_bridge

    x = tf_keras.Input((3,))
    model = tfmot_bridge.wrap(tf_keras.Model(x, tf_keras.layers.Dense(2, name="logits")(x)),
                              tfmot_bridge.PruneScope())
    with pytest.raises(ConfigError, match=r"layer '\w*prune_low_magnitude_logits' \(FixedMaskPruneLowMagnitude\) "
                                          "is still a pruning wrapper"):
        deployable.check_unwrapped(model)


def _app(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "apps.export", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_app_prints_the_table_and_writes_the_file(study, study_digest, tmp_path):
    out = tmp_path / "k.tflite"
    p = _app(f"--study_dir={study}", "--round=2", f"--out={out}", "--repeats=2")
    assert p.returncode == 0, p.stderr
    assert "tflite export of round 2" in p.stdout and "| file size (bytes) |" in p.stdout
    assert "latency, batch 1 (µs per example)" in p.stdout and f"wrote {out}" in p.stdout
    assert p.stderr.strip() == ""
    assert out.stat().st_size > 0 and sorted(os.listdir(tmp_path)) == ["k.tflite"]
    assert digest(study) == study_digest


@pytest.mark.parametrize("args, message", [
    (["--round=99"], "--round=99: the study records rounds 0..4"),
    (["--round=last"], "--round=last: choose best_val, best_test or a round number"),
    (["--study_dir=MISSING"], "no such folder"),
    (["--out=FILE/x.tflite"], "is not an existing folder"),
    (["--out=STUDY/x.tflite"], "inside the study directory"),
])
def test_app_refuses_bad_input_with_one_line(study, study_digest, tmp_path, args, message):
    (tmp_path / "f").write_text("a file")
    subs = {"MISSING": str(tmp_path / "nope"), "FILE": str(tmp_path / "f"), "STUDY": str(study)}
    args = [a.replace(k, v) for a in args for k, v in [max(subs.items(), key=lambda kv: kv[0] in a)]]
    given = {a.split("=")[0] for a in args}
    base = [f"--study_dir={study}", f"--out={tmp_path / 'x.tflite'}"]
    p = _app(*[b for b in base if b.split("=")[0] not in given], *args)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], p.stderr
    assert sorted(os.listdir(tmp_path)) == ["f"]            # nothing written
    assert digest(study) == study_digest


def test_report_deployment_table(study, study_digest, tmp_path):
    import json

    from keras_sdd.analysis import report

    out = tmp_path / "report"
    report.build([study], out, deployment=True)
    rows = json.loads((out / "analysis.json").read_text())["deployment_table"]
    assert len(rows) == 1 and "error" not in rows[0]
    r = rows[0]
    assert r["round"] == resolve_round("best_val", study_rows(study)[1])
    assert 0 < r["gzip_ratio"] < 1 and r["latency_ratio_b1"] > 0 and r["latency_ratio_b128"] > 0
    assert abs(r["test_accuracy_file"] - r["test_accuracy_recorded"]) <= 0.005
    assert pathlib.Path(r["file"]).parent == out / "deployment" and pathlib.Path(r["file"]).is_file()
    md = (out / "tables.md").read_text()
    assert "## Deployment" in md and f"{r['gzip_ratio']:.3f}" in md
    assert digest(study) == study_digest
