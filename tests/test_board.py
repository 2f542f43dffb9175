"""TensorBoard as the place a study is understood: the events of two tiny studies (a two-point "sweep"), read back
with tensorboard's own event_processing and its HParams backend; progress lines; help; a full disk."""
import errno
import json
import pathlib
import re
import subprocess
import sys
import types

import numpy as np
import pytest

from keras_sdd.config import StudyConfig
from keras_sdd.pruning import tfmot_bridge
from keras_sdd.study import loading, runner
from keras_sdd.study.board import EpochRecorder, StudyBoard, remaining_step, summary_metrics
from keras_sdd.study.records import TIME_FIELDS, read_rounds

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = dict(dataset="gaussian_mixture", gmm_dim=10, gmm_train_size=400, gmm_test_size=300, noise_rate=0.2,
            model="fcn", depth=1, epochs=2, batch_size=64, optimizer="adam", learning_rate=0.01,
            lr_schedule="cosine", prune_fraction=0.5, max_rounds=3, checkpoint_every_secs=0.0, threads=1,
            track_energy=False)
WIDTHS = (8.0, 16.0)


def _accumulator(run_dir: pathlib.Path):
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(run_dir), size_guidance={ea.TENSORS: 0})
    acc.Reload()
    return acc


def _values(acc, tag):
    import tensorflow as tf

    return {e.step: tf.make_ndarray(e.tensor_proto) for e in acc.Tensors(tag)}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two tiny studies (widths 8 and 16) under one folder, with the HParams experiment apps.sweep writes."""
    from apps.sweep import write_hparams_experiment

    root = tmp_path_factory.mktemp("sweep")
    configs = [StudyConfig(**{**TINY, "width": w, "logdir": str(root / f"width={w:g}")}) for w in WIDTHS]
    for c in configs:
        runner.run_study(c)
    write_hparams_experiment(root, {"width": ["8", "16"]}, [types.SimpleNamespace(config=c.to_dict())
                                                             for c in configs])
    return root, configs


@pytest.fixture(scope="module")
def study(sweep):
    root, configs = sweep
    d = pathlib.Path(configs[1].logdir)
    return d, read_rounds(d), _accumulator(d / "tensorboard" / "study")


def test_two_runs_per_study_not_one_per_round(study):
    d, rows, _ = study
    assert len(rows) == 4
    runs = sorted(p.relative_to(d / "tensorboard").parent.as_posix()
                  for p in (d / "tensorboard").rglob("events.out.tfevents.*"))
    assert runs == ["epochs", "study"]


def test_per_round_scalars_against_round_and_log_remaining_weights(study):
    _, rows, acc = study
    test = _values(acc, "round/test_accuracy")
    assert sorted(test) == [0, 1, 2, 3]
    assert [float(test[k]) for k in range(4)] == pytest.approx([r["test_accuracy"] for r in rows])
    remaining = _values(acc, "vs_remaining/test_accuracy")
    # prune_fraction 0.5: remaining share 1, 1/2, 1/4, 1/8 -> -1000·log10: 0, 301, 602, 903
    assert sorted(remaining) == [remaining_step(r["sparsity"]) for r in rows] == [0, 301, 602, 903]


def test_weight_histograms_sparsity_and_norms_every_round(study):
    d, rows, acc = study
    tags = acc.Tags()["tensors"]
    layers = sorted(t[len("weights/"):] for t in tags if t.startswith("weights/") and t != "weights/all_layers")
    assert layers == ["dense1/kernel", "logits/kernel"]
    for key in layers:
        assert sorted(_values(acc, f"weights/{key}")) == [0, 1, 2, 3]
        assert sorted(_values(acc, f"layer_sparsity/{key}")) == [0, 1, 2, 3]
    every = _values(acc, "weights/all_layers")
    for k, row in enumerate(rows):
        # histogram buckets (left, right, count): their counts add up to the surviving kernel weights
        assert every[k][:, 2].sum() == row["prunable_params"] - row["pruned_params"]
        layer_sparsity = {key: float(_values(acc, f"layer_sparsity/{key}")[k]) for key in layers}
        assert layer_sparsity == pytest.approx({f"{name}/kernel": s for name, s in row["per_layer_sparsity"].items()},
                                               abs=1e-6)
    weights = tfmot_bridge.get_weights(loading.load_round(d, 3).model)   # the round's checkpoint, masks applied
    for key in layers:
        norm = float(_values(acc, f"layer_norm/{key}")[3])
        assert norm == pytest.approx(float(np.linalg.norm(weights[key])), rel=1e-5)


def test_images_config_text_and_custom_scalars_layout(study):
    from tensorboard.plugins.custom_scalar import layout_pb2

    d, rows, acc = study
    for tag in ("reliability", "bayes_posterior"):
        images = _values(acc, tag)
        assert sorted(images) == [0, 1, 2, 3]
        assert all(v[2][:8] == b"\x89PNG\r\n\x1a\n" for v in images.values())
    assert sorted(_values(acc, "sdd_curve")) == [3]
    text = _values(acc, "config")[0].item().decode()
    assert '"gmm_dim": 10' in text and '"width": 16.0' in text
    layout = layout_pb2.Layout.FromString(_values(acc, "custom_scalars__config__")[0].item())
    tags = set(acc.Tags()["tensors"])
    for category, prefix in zip(layout.category, ("round/", "vs_remaining/")):
        for chart in category.chart:
            regex = re.compile(chart.multiline.tag[0])
            matched = {t for t in tags if regex.search(t)}
            assert matched and all(t.startswith(prefix) for t in matched), chart.title
    charts = " ".join(c.title for c in layout.category[0].chart)
    assert "test" in charts and "ECE" in charts and "train" in charts


def test_hparams_session_and_summary_metrics(study):
    from tensorboard.plugins.hparams import metadata

    d, rows, acc = study
    info = metadata.parse_session_start_info_plugin_data(
        acc.SummaryMetadata("_hparams_/session_start_info").plugin_data.content)
    assert info.hparams["width"].number_value == 16.0 and info.hparams["seed"].number_value == 0
    assert info.hparams["dataset"].string_value == "gaussian_mixture" and "logdir" not in info.hparams
    metrics = {tag: float(v[3]) for tag in acc.Tags()["tensors"] if tag.startswith("summary/")
               for v in [_values(acc, tag)]}
    assert metrics == pytest.approx(summary_metrics(rows))
    val = [r["val_accuracy"] for r in rows]
    best = val.index(max(val))
    assert metrics["summary/best_pruned_round"] == best
    assert metrics["summary/best_pruned_test_accuracy"] == pytest.approx(rows[best]["test_accuracy"])
    assert metrics["summary/best_pruned_effective_params"] == rows[best]["nonzero_weights"]
    assert metrics["summary/dense_ece_clean"] == pytest.approx(rows[0]["ece_clean"])
    assert metrics["summary/train_flops_total"] == pytest.approx(rows[-1]["train_flops_cum"])


def test_epochs_run_has_a_global_epoch_axis(study):
    d, _, _ = study
    acc = _accumulator(d / "tensorboard" / "epochs")
    loss = _values(acc, "epoch/loss")
    assert sorted(loss) == list(range(8))                   # 4 rounds × 2 epochs, one after another
    rounds = _values(acc, "epoch/round")
    assert [float(rounds[s]) for s in range(8)] == [0, 0, 1, 1, 2, 2, 3, 3]


def test_sweep_hparams_table_has_one_row_per_study(sweep):
    """TensorBoard's own HParams backend, over the sweep folder: one session group per study, its width, and
    the summary metrics filled from the study's own run."""
    from tensorboard import context as tb_context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups

    root, configs = sweep
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(root))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(root))
    context = backend_context.Context(base_plugin.TBContext(logdir=str(root), multiplexer=mux,
                                                            data_provider=provider))
    request = api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=100, allowed_statuses=[
        api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_RUNNING, api_pb2.STATUS_FAILURE])
    groups = list_session_groups.Handler(tb_context.RequestContext(), context, "", request).run().session_groups
    assert len(groups) == 2
    by_width = {g.hparams["width"].number_value: g for g in groups}
    assert set(by_width) == set(WIDTHS)
    for c in configs:
        metrics = {m.name.tag: m.value for m in by_width[c.width].metric_values}
        rows = read_rounds(pathlib.Path(c.logdir))
        assert metrics["summary/dense_test_accuracy"] == pytest.approx(rows[0]["test_accuracy"])
        assert metrics["summary/rounds_done"] == 4
    experiment = _accumulator(root / "hparams")
    assert "_hparams_/experiment" in experiment.Tags()["tensors"]


def test_older_layout_keeps_one_run_per_round(tmp_path):
    """A study directory of the older layout (tensorboard/round_KKK) keeps writing its epochs there on resume."""
    (tmp_path / "tensorboard" / "round_000").mkdir(parents=True)
    board = StudyBoard(tmp_path, lambda k: 2)
    assert board.legacy
    recorder = board.epoch_recorder(1)
    recorder.add(0, {"loss": 1.0}, 0)
    recorder.flush()
    assert list((tmp_path / "tensorboard" / "round_001").glob("events.out.tfevents.*"))
    assert not (tmp_path / "tensorboard" / "epochs").exists()
    fresh = StudyBoard(tmp_path / "new", lambda k: 3)
    assert not fresh.legacy
    rec = fresh.epoch_recorder(2)
    assert isinstance(rec, EpochRecorder) and rec.offset == 6


# --- console ------------------------------------------------------------------------------------------------


def test_progress_lines_are_few_and_say_epoch_rate_and_time_left():
    """A 30-epoch fit under a fake clock advancing 3 s per reading: lines at most every 20 s of it, each saying
    epoch k/30, the rate and the time left; none before 20 s have passed."""
    import tf_keras

    from keras_sdd.callbacks import EpochProgress

    now = [0.0]

    def clock():
        now[0] += 3.0
        return now[0]
    lines = []
    model = tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(3,))])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = np.zeros((8, 3), np.float32), np.zeros(8, np.int64)
    progress = EpochProgress(every_secs=20, label="round 4", log=lines.append, clock=clock)
    model.fit(x, y, batch_size=4, epochs=30, verbose=0, callbacks=[progress])
    assert lines and len(lines) == progress.lines <= now[0] / 20 + 1
    for line in lines:
        assert re.fullmatch(r"round 4: epoch \d+/30( \(\+\d+% of epoch \d+\))?, (\d+\.\d epochs/s|\S+/epoch), "
                            r"~\S+ left in this fit", line), line


def test_progress_is_quiet_with_verbosity_minus_1():
    from absl import flags

    from keras_sdd import console

    fv = flags.FLAGS
    try:
        fv.unparse_flags()
        fv(["sdd"])
        assert console.wants_progress()
        fv.unparse_flags()
        fv(["sdd", "--verbosity=-1"])
        assert not console.wants_progress()
    finally:
        fv.unparse_flags()


def test_helpshort_is_short_and_help_grouped_by_topic():
    short = subprocess.run([sys.executable, "-m", "apps.sdd", "--helpshort"], cwd=REPO, capture_output=True,
                           text=True, timeout=120)
    assert short.returncode == 0 and short.stderr == ""
    assert 15 <= len(short.stdout.splitlines()) <= 40
    assert "--logdir" in short.stdout and "--gmm_dim" not in short.stdout
    full = subprocess.run([sys.executable, "-m", "apps.sdd", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert full.returncode == 0
    topics = [line for line in full.stdout.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert topics[:3] == ["the study:", "data:", "model:"] and "general:" in topics
    from apps import sdd  # noqa: F401  (defines the flags)
    import dataclasses

    for field in dataclasses.fields(StudyConfig):        # every study setting is listed once
        assert len(re.findall(rf"^[* ] --{field.name}[=:]", full.stdout, re.M)) == 1, field.name
    assert re.search(r"^\* --logdir=", full.stdout, re.M) and re.search(r"^  --gmm_dim=", full.stdout, re.M)


_FULL_DISK = """
import errno, os, sys
real, calls = os.replace, []
def replace(src, dst, *a, **k):
    if str(dst).endswith("rounds.csv"):
        calls.append(dst)
        if len(calls) == 3:   # the row of round 2
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real(src, dst, *a, **k)
os.replace = replace
sys.argv = ["apps.sdd", *sys.argv[1:]]
from apps import sdd
sdd.run()
"""


def test_full_disk_is_one_line_exit_2_and_resume_ends_identical(sweep, tmp_path):
    _, configs = sweep
    reference = configs[1]
    logdir = tmp_path / "study"
    args = [f"--{k}={v}" for k, v in TINY.items()] + [f"--width={reference.width}", f"--logdir={logdir}"]
    done = subprocess.run([sys.executable, "-c", _FULL_DISK, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot write the file at {logdir / 'rounds.csv'}: No space left on device"], \
        done.stderr
    assert "Traceback" not in done.stderr
    assert len(read_rounds(logdir)) == 2 and not list(logdir.glob(".rounds.csv.tmp"))
    runner.run_study(reference.replace(logdir=str(logdir), resume=True))
    a, b = read_rounds(pathlib.Path(reference.logdir)), read_rounds(logdir)
    assert len(a) == len(b) == 4
    for ra, rb in zip(a, b):
        assert {k: v for k, v in ra.items() if k not in TIME_FIELDS} == \
               {k: v for k, v in rb.items() if k not in TIME_FIELDS}, ra["round"]
    assert json.loads((logdir / "summary.json").read_text())["complete"]


def test_report_says_no_second_descent_and_cut_short(sweep, tmp_path):
    import csv
    import shutil

    from keras_sdd.analysis import report
    from keras_sdd.analysis.curves import best_round

    root, configs = sweep
    cut = tmp_path / "cut"
    shutil.copytree(configs[0].logdir, cut)
    with open(cut / "rounds.csv", newline="") as f:
        lines = f.read().splitlines(keepends=True)
    (cut / "rounds.csv").write_text("".join(lines[:3]))             # header and rounds 0, 1
    summary = json.loads((cut / "summary.json").read_text())
    (cut / "summary.json").write_text(json.dumps({**summary, "complete": False, "rounds_done": 2}))
    report.build([root, cut], tmp_path / "rep")
    tables = (tmp_path / "rep" / "tables.md").read_text()
    assert f"({cut}): " in tables and "study cut short at round 1 of 3 planned" in tables
    for c in configs:
        dense_best = best_round(read_rounds(pathlib.Path(c.logdir)), "val_accuracy") == 0
        line = [ln for ln in tables.splitlines() if f"({c.logdir})" in ln]
        assert bool(line and "no second descent (best pruned = dense)" in line[0]) == dense_best
    assert "cut short" not in "".join(ln for ln in tables.splitlines() if f"({configs[1].logdir})" in ln)


@pytest.mark.slow
def test_long_round_prints_progress_inside_it(tmp_path):
    """The quickstart with one 600-epoch dense round (~40 s alone on a CPU): `epoch k/600` lines while it runs,
    before the round's own line; none with --verbosity=-1."""
    args = ["--flagfile=configs/quickstart.flags", "--max_rounds=1", "--epochs=600", "--notrack_energy"]
    done = subprocess.run([sys.executable, "-m", "apps.sdd", *args, f"--logdir={tmp_path / 'q'}"], cwd=REPO,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    progress = [i for i, ln in enumerate(lines) if re.search(r"round 0: epoch \d+/600", ln)]
    first_round = next(i for i, ln in enumerate(lines) if re.search(r"round 0/1 ", ln))
    assert progress and progress[0] < first_round, done.stderr
    quiet = subprocess.run([sys.executable, "-m", "apps.sdd", *args, "--epochs=60", "--verbosity=-1",
                            f"--logdir={tmp_path / 'quiet'}"], cwd=REPO, capture_output=True, text=True,
                           timeout=1200)
    assert quiet.returncode == 0 and "epoch " not in quiet.stderr and "round 0/1 " in quiet.stderr


def test_failed_event_and_checkpoint_writes_are_one_line_naming_the_path(tmp_path, monkeypatch):
    """TensorFlow's own write errors (event files, checkpoints) become one StorageError line, as Python's do."""
    import tensorflow as tf
    import tf_keras

    from keras_sdd.study.checkpoints import StudyCheckpoints
    from keras_sdd.study.storage import StorageError

    board = StudyBoard(tmp_path, lambda k: 1)
    writer = board._writer()

    def full(*_, **__):
        raise tf.errors.ResourceExhaustedError(None, None, f"{tmp_path}/x.tfevents; No space left on device")
    monkeypatch.setattr(writer, "flush", full)
    with pytest.raises(StorageError) as e:
        board.log_round({"round": 0, "sparsity": 0.0, "test_accuracy": 0.5})
    assert str(e.value) == f"cannot write TensorBoard events at {tmp_path / 'tensorboard'}: No space left on device"

    model = tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(3,))])
    ckpts = StudyCheckpoints(tmp_path, model, tf_keras.optimizers.SGD())
    monkeypatch.setattr(tf.train.Checkpoint, "write", lambda *a, **k: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(StorageError, match=r"^cannot write the checkpoint at .*round-002: No space left on device$"):
        ckpts.save_round(2, 5)
    assert not (tmp_path / "checkpoints" / "latest.json").exists()     # nothing points at a half-written file
