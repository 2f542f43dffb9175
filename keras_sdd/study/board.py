"""TensorBoard logging of a study, and its curve as a PNG.

Layout: two runs per study, whatever the number of rounds, so a sweep's runs list shows studies, not rounds
(``<point>/tensorboard/study`` and ``<point>/tensorboard/epochs`` for each point):

- ``tensorboard/study``: everything measured once per round, with step = round:
  ``round/<metric>`` (the ``scalar`` columns of the round row); ``vs_remaining/<metric>`` (the same, with step =
  −1000·log10 of the remaining share of prunable weights: 0 dense, 1000 at 10 % left, 2000 at 1 %, 3000 at 0.1 %
  — TensorBoard has no log axis, so the step *is* the log axis the papers use; a study pruning 20 % a round
  moves ≈ 97 steps a round); per prunable layer the surviving kernel weights (``weights/<layer>``, histogram),
  ``layer_sparsity/<layer>`` and ``layer_norm/<layer>`` (‖surviving kernel‖₂), all layers on one histogram
  (``weights/all_layers``); images ``reliability`` (clean and noisy test labels, ECE in each title) and, for the
  Gaussian mixtures, ``bayes_posterior`` (model vs Bayes P(y=1|x) against the Bayes log-odds, i.e. along the
  mean direction for the linear task); once, at the first start: the config as text (``config``), the HParams
  session (the settings) and the custom-scalars layout (the SDD picture on one page); at the end: the summary
  metrics (``summary/*``, the HParams metrics) and the curve image (``sdd_curve``).
- ``tensorboard/epochs``: per-epoch scalars of every round on one global epoch axis (``epoch/loss``,
  ``epoch/accuracy``, ``epoch/lr``, and ``epoch/round``, the round each epoch belongs to), written together
  with each epoch checkpoint, so a resumed study has the same tags and steps as an uninterrupted one.

Why one epochs run rather than one run per round (the layout before): 30 rounds made 30 runs, a 16-study sweep
~290, and the runs list became unusable; on one global epoch axis the rounds follow each other left to right
(the sawtooth of ``epoch/accuracy`` is the prune-and-retrain cycle) and ``epoch/round`` says which round a step
is. A study directory written by the older layout (``tensorboard/round_KKK``) keeps writing its epochs there
when resumed, so its runs stay consistent; nothing already written is touched (its study run gets the newer
per-round charts from the round it resumes at, and no config/HParams, which are written at a first start only).
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import pathlib
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from keras_sdd.study import paths
from keras_sdd.study.records import SCALARS, is_number
from keras_sdd.study.storage import writing

#: Settings that say where or how a study ran, not what it studies: left out of the HParams.
NOT_HPARAMS = ("logdir", "resume", "resume_from_round", "checkpoint_every_secs", "threads", "data_dir",
               "download", "teacher_flagfile")
#: The summary metrics of a study (HParams metrics), tag -> what it is.
SUMMARY_METRICS = {
    "summary/dense_test_accuracy": "test accuracy of the dense model (round 0)",
    "summary/best_pruned_round": "validation-chosen best pruned round",
    "summary/best_pruned_test_accuracy": "its test accuracy",
    "summary/best_pruned_sparsity": "its sparsity",
    "summary/best_pruned_effective_params": "its effective parameters (non-zero kernel weights, seed 2)",
    "summary/best_pruned_nonzero_weights": "its non-zero kernel weights",
    "summary/dense_ece_clean": "ECE of the dense model (clean test labels)",
    "summary/best_pruned_ece_clean": "ECE of the best pruned model (clean test labels)",
    "summary/train_flops_total": "training FLOPs of all rounds (sparsity-aware)",
    "summary/train_flops_dense_total": "training FLOPs of all rounds counted dense",
    "summary/energy_kwh_total": "energy of all rounds (kWh)",
    "summary/rounds_done": "rounds recorded",
}
#: Curves of the custom-scalars page: (chart title, tag-name regex of the metrics).
_CHARTS = (("accuracy: test, validation, train (noisy and clean labels)",
            "(test_accuracy|val_accuracy|train_noisy_accuracy|train_clean_accuracy)"),
           ("calibration: ECE (clean and noisy test labels)", "(ece_clean|ece_noisy)"),
           ("memorised share of the noisy training labels", "memorized_fraction"),
           ("loss: test and train (noisy labels)", "(test_loss|train_noisy_loss)"))


def remaining_step(sparsity: float) -> int:
    """The ``vs_remaining`` step of a global sparsity: −1000·log10(remaining share), 0 for the dense model."""
    return int(round(-1000.0 * math.log10(max(1.0 - float(sparsity), 1e-9))))


def hparam_value(value: Any) -> Any:
    """A setting as an HParams value (bool, int, float or str): lists joined with ',', None as 'none'."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def study_hparams(config: Mapping[str, Any]) -> Dict[str, Any]:
    """The HParams of a study: every setting of its config except where and how it ran (``NOT_HPARAMS``)."""
    return {k: hparam_value(v) for k, v in config.items() if k not in NOT_HPARAMS}


def summary_metrics(rows: Sequence[Mapping[str, Any]]) -> Dict[str, float]:
    """The HParams metrics of a study from its rows (only those known: an older study lacks some columns)."""
    from keras_sdd.analysis import curves

    if not rows:
        return {}
    dense, last = rows[0], rows[-1]
    out: Dict[str, Any] = {"summary/dense_test_accuracy": dense.get("test_accuracy"),
                           "summary/dense_ece_clean": dense.get("ece_clean"),
                           "summary/train_flops_total": last.get("train_flops_cum"),
                           "summary/train_flops_dense_total": last.get("train_flops_dense_cum"),
                           "summary/energy_kwh_total": last.get("energy_kwh_cum"),
                           "summary/rounds_done": len(rows)}
    k = curves.best_round(rows, "val_accuracy")
    if k is not None:
        best = rows[k]
        out.update({"summary/best_pruned_round": k, "summary/best_pruned_test_accuracy": best.get("test_accuracy"),
                    "summary/best_pruned_sparsity": best.get("sparsity"),
                    "summary/best_pruned_effective_params": curves.effective_params(best)["value"],
                    "summary/best_pruned_nonzero_weights": best.get("nonzero_weights"),
                    "summary/best_pruned_ece_clean": best.get("ece_clean")})
    return {tag: float(v) for tag, v in out.items() if is_number(v)}


def custom_scalars_layout():
    """The SDD picture on one page (custom-scalars plugin): each chart against round, and against the log of
    the remaining weights (``vs_remaining``); the charts match every run, so a sweep's studies share them."""
    from tensorboard.plugins.custom_scalar import layout_pb2

    def category(title, prefix):
        return layout_pb2.Category(title=title, chart=[
            layout_pb2.Chart(title=name, multiline=layout_pb2.MultilineChartContent(tag=[rf"^{prefix}/{regex}$"]))
            for name, regex in _CHARTS])
    return layout_pb2.Layout(category=[
        category("SDD against round", "round"),
        category("SDD against remaining weights (step = -1000·log10 remaining share: 1000 = 10 %, 2000 = 1 %)",
                 "vs_remaining")])


def _has_events(folder: pathlib.Path) -> bool:
    return folder.is_dir() and any(folder.glob("events.out.tfevents.*"))


class StudyBoard:
    """The TensorBoard runs of one study (see the module docstring). ``epochs_of_round(k)`` gives the epochs of
    round k (for the global epoch axis)."""

    def __init__(self, study_dir: pathlib.Path, epochs_of_round: Optional[Callable[[int], int]] = None):
        self.paths = paths.StudyPaths(study_dir)
        self.epochs_of_round = epochs_of_round
        tb = self.paths.tensorboard
        #: A study started under the one-run-per-round layout keeps it (its runs stay consistent).
        self.legacy = tb.is_dir() and any(tb.glob("round_*")) and not (tb / "epochs").exists()
        self._study = None
        self._epochs = None

    def _writer(self):
        if self._study is None:
            with writing(self.paths.tb_study(), "create the TensorBoard event file"):
                self._study = tf.summary.create_file_writer(str(self.paths.tb_study()))
        return self._study

    @contextlib.contextmanager
    def _study_run(self) -> Iterator[None]:
        """The study run's writer as the default, flushed at the end; a failed write is one StorageError line
        (TensorFlow writes, and may fail, on leaving ``as_default`` as well as on ``flush``)."""
        with writing(self.paths.tensorboard, "write TensorBoard events"):
            writer = self._writer()
            with writer.as_default():
                yield
            writer.flush()

    # --- per epoch -----------------------------------------------------------------------------------------
    def epoch_recorder(self, round_index: int, schedule: Optional[Any] = None) -> "EpochRecorder":
        """The recorder of round ``round_index``'s epoch scalars (global epoch steps; legacy: the round's run)."""
        path = self.paths.tb_round(round_index) if self.legacy else self.paths.tb_epochs()
        if self.legacy:
            with writing(path, "create the TensorBoard event file"):
                return EpochRecorder(tf.summary.create_file_writer(str(path)), schedule, where=path)
        if self._epochs is None:
            with writing(path, "create the TensorBoard event file"):
                self._epochs = tf.summary.create_file_writer(str(path))
        offset = sum(self.epochs_of_round(j) for j in range(round_index)) if self.epochs_of_round else 0
        return EpochRecorder(self._epochs, schedule, offset=offset, round_index=round_index, where=path)

    # --- per round -----------------------------------------------------------------------------------------
    def log_round(self, row: Mapping[str, Any], only: Optional[Sequence[str]] = None) -> None:
        """The row's scalar columns (or the ``only`` ones), skipping missing and NaN values: ``round/<name>``
        (step = round) and ``vs_remaining/<name>`` (step = ``remaining_step``)."""
        k = int(row["round"])
        x = remaining_step(row["sparsity"])
        with self._study_run():
            for name in (SCALARS if only is None else only):
                value = row.get(name)
                if is_number(value):
                    tf.summary.scalar(f"round/{name}", float(value), step=k)
                    tf.summary.scalar(f"vs_remaining/{name}", float(value), step=x)

    def log_weights(self, round_index: int, weights: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray]
                    ) -> None:
        """Per prunable kernel (``weights``/``masks`` by key, as ``tfmot_bridge.get_weights/get_masks`` give
        them): the surviving weights' histogram, sparsity and ℓ2 norm; all layers' surviving weights on one
        histogram. A layer pruned to 100 % has sparsity 1, norm 0 and no histogram."""
        alive = []
        with self._study_run():
            for key in sorted(weights):
                w, m = np.asarray(weights[key]), np.asarray(masks[key])
                kept = w[m != 0].astype(np.float32)
                tf.summary.scalar(f"layer_sparsity/{key}", 1.0 - kept.size / max(m.size, 1), step=round_index)
                tf.summary.scalar(f"layer_norm/{key}", float(np.linalg.norm(kept)), step=round_index)
                if kept.size:
                    tf.summary.histogram(f"weights/{key}", kept, step=round_index)
                    alive.append(kept)
            if alive:
                tf.summary.histogram("weights/all_layers", np.concatenate(alive), step=round_index)

    def log_predictions(self, round_index: int, probs: np.ndarray, y_clean: np.ndarray,
                        y_noisy: Optional[np.ndarray], bayes_proba: Optional[np.ndarray], bins: int) -> None:
        """The round's reliability diagram (clean and, when drawn, noisy test labels; ECE in each title) and, for
        a task with known Bayes probabilities, the model's against the Bayes posterior."""
        from keras_sdd.analysis import plots

        panels = {f"round {round_index}, clean test labels": {"probs": probs, "labels": y_clean}}
        if y_noisy is not None:
            panels[f"round {round_index}, noisy test labels"] = {"probs": probs, "labels": y_noisy}
        images = {"reliability": plots.reliability_diagrams(panels, bins, dpi=60)}
        if bayes_proba is not None and probs.shape[1] == 2:
            images["bayes_posterior"] = plots.bayes_posterior_png(probs, bayes_proba,
                                                                  title=f"round {round_index}")
        for tag, png in images.items():
            if png is not None:
                self.log_image(tag, png, round_index)

    def log_image(self, tag: str, png: bytes, step: int) -> None:
        with self._study_run():
            tf.summary.image(tag, tf.expand_dims(tf.io.decode_png(png, channels=4), 0), step=step)

    def log_text(self, tag: str, text: str, step: int = 0) -> None:
        with self._study_run():
            tf.summary.text(tag, text, step=step)

    # --- once per study ------------------------------------------------------------------------------------
    def log_start(self, config: Mapping[str, Any]) -> bool:
        """At a study's first start (its study run holds no events yet): the config as text, the HParams session
        and the custom-scalars layout. Returns whether it wrote them (a resume does not write them again)."""
        if _has_events(self.paths.tb_study()):
            return False
        from tensorboard.plugins.custom_scalar import summary as cs_summary
        from tensorboard.plugins.hparams import api as hp

        text = "```\n" + json.dumps(dict(config), indent=2, sort_keys=True, default=str) + "\n```"
        with self._study_run():
            tf.summary.text("config", text, step=0)
            hp.hparams(study_hparams(config), trial_id=str(self.paths.root))
            tf.summary.experimental.write_raw_pb(cs_summary.pb(custom_scalars_layout()).SerializeToString(), step=0)
        return True

    def log_summary(self, rows: Sequence[Mapping[str, Any]]) -> Dict[str, float]:
        """The study's summary metrics (``summary_metrics``), step = its last round; returns them."""
        values = summary_metrics(rows)
        step = len(rows) - 1
        with self._study_run():
            for tag, v in values.items():
                tf.summary.scalar(tag, v, step=step)
        return values


def write_experiment(folder: pathlib.Path, axes: Mapping[str, Sequence[Any]]) -> pathlib.Path:
    """The HParams experiment of a sweep in ``folder`` (a TensorBoard run of its own): the grid's axes as
    hparams with their values as discrete domains, and the summary metrics. Replaces an earlier one there (the
    sweep's own file, rewritten when a sweep is run again)."""
    from tensorboard.plugins.hparams import api as hp

    folder = pathlib.Path(folder)
    hparams = []
    for name, values in axes.items():
        vals = sorted({hparam_value(v) for v in values}, key=lambda v: (str(type(v)), v))
        kinds = {type(v) for v in vals}
        hparams.append(hp.HParam(name, hp.Discrete(vals) if len(kinds) == 1 else None))
    metrics = [hp.Metric(tag, display_name=tag.split("/", 1)[1], description=doc)
               for tag, doc in SUMMARY_METRICS.items()]
    with writing(folder, "write the sweep's HParams experiment"):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("events.out.tfevents.*"):
            old.unlink()
        writer = tf.summary.create_file_writer(str(folder))
        with writer.as_default():
            hp.hparams_config(hparams=hparams, metrics=metrics)
        writer.flush()
        writer.close()
    return folder


def figure_png(fig) -> bytes:
    """A matplotlib Figure as PNG bytes, without pyplot (a notebook user's backend is never touched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _remaining(rows) -> List[float]:
    return [max(1.0 - float(r["sparsity"]), 1e-6) * 100 for r in rows]


def _axes(title: str):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("remaining weights (%) — sparsity grows to the right")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    return fig, ax


def mark_best_and_phases(ax, rows, x_of: Callable[[Mapping[str, Any]], float]) -> None:
    """Marks the validation-chosen best round (a dotted vertical line) and shades the SDD phases (seed 1:
    light, critical, sweet spot, collapse) from where ``curves.phases`` finds them starting to the next one;
    ``x_of(row)`` is a row's x value in the figure."""
    from keras_sdd.analysis import curves

    if not rows:
        return
    best = curves.best_round(rows, "val_accuracy")
    if best is not None:
        ax.axvline(x_of(rows[best]), color="k", ls=":", lw=1, label=f"best pruned (val-chosen): round {best}")
    starts = curves.phases(rows)
    by_sparsity = {r.get("sparsity"): r for r in rows}
    known = [(name, by_sparsity[starts[key]]) for name, key in
             (("light", "phase1"), ("critical", "phase2"), ("sweet spot", "phase3"), ("collapse", "phase4"))
             if starts.get(key) in by_sparsity]
    colours = {"light": "tab:green", "critical": "tab:red", "sweet spot": "tab:blue", "collapse": "tab:gray"}
    for i, (name, row) in enumerate(known):
        right = x_of(known[i + 1][1]) if i + 1 < len(known) else x_of(rows[-1])
        ax.axvspan(x_of(row), right, color=colours[name], alpha=0.08, lw=0)
        ax.text(x_of(row), 0.02, f" {name}", transform=ax.get_xaxis_transform(), fontsize=7, color=colours[name])


def curve_png(rows: List[Dict[str, Any]], title: str = "") -> bytes:
    """Test / validation / train accuracy against sparsity (log-scaled remaining share), as PNG bytes, with the
    best round marked and the phases shaded."""
    fig, ax = _axes(title)
    for key, label in (("test_accuracy", "test"), ("val_accuracy", "validation (noisy labels)"),
                       ("train_noisy_accuracy", "train (noisy labels)"),
                       ("train_clean_accuracy", "train (clean labels)")):
        ys = [r.get(key) for r in rows]
        if all(is_number(y) for y in ys):
            ax.plot(_remaining(rows), [100 * y for y in ys], marker="o", ms=3, label=label)
    mark_best_and_phases(ax, rows, lambda r: max(1.0 - float(r["sparsity"]), 1e-6) * 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


def curves_png(curves: Mapping[str, List[Dict[str, Any]]], key: str = "test_accuracy", title: str = "") -> bytes:
    """One line per named study (e.g. one per λ): ``key`` against sparsity, as PNG bytes."""
    fig, ax = _axes(title)
    for name, rows in curves.items():
        pts = [(x, 100 * r[key]) for x, r in zip(_remaining(rows), rows) if is_number(r.get(key))]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=3, label=name)
    ax.set_ylabel(f"{key.replace('_', ' ')} (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


class EpochRecorder:
    """Per-epoch scalars of one round, held until ``flush`` (called right after each epoch checkpoint and at the
    round's end), so TensorBoard only ever shows epochs a resume will not redo. Steps are ``offset + epoch``
    (the global epoch); with ``round_index`` each epoch also records ``epoch/round``."""

    def __init__(self, writer, schedule: Optional[Any] = None, offset: int = 0, round_index: Optional[int] = None,
                 where: Optional[pathlib.Path] = None):
        self.writer, self.schedule, self.offset, self.round_index = writer, schedule, int(offset), round_index
        self.where = where
        self.pending: List[tuple] = []

    def add(self, epoch: int, logs: Mapping[str, Any], iterations) -> None:
        values = {f"epoch/{k}": float(v) for k, v in (logs or {}).items()}
        if self.schedule is not None:
            values["epoch/lr"] = float(self.schedule(iterations))
        if self.round_index is not None:
            values["epoch/round"] = float(self.round_index)
        self.pending.append((self.offset + epoch, values))

    def flush(self) -> None:
        with writing(self.where or pathlib.Path("tensorboard"), "write TensorBoard events"):
            with self.writer.as_default():
                for step, values in self.pending:
                    for tag, value in values.items():
                        tf.summary.scalar(tag, value, step=step)
            self.writer.flush()
        self.pending.clear()
