"""The SDD study: round 0 trains the dense model, each later round prunes and retrains, every round is recorded.

One wrapped model, one optimizer and one compiled train function serve the whole study: between rounds only
masks are assigned and variables reset, so nothing is traced anew (tfmot's gradual schedules are the
exception: they are baked into the graph, so those rounds retrace once each).

Every step is idempotent, in the manner of open_lth: a round already in ``rounds.csv`` is skipped, and a round
cut short resumes from its latest epoch checkpoint, so ``--resume`` is the normal path, not a special one.
"""
from __future__ import annotations

import json
import pathlib
import time
from typing import Any, Dict, List, Optional

import numpy as np
import tensorflow as tf
import tf_keras
from absl import logging

from keras_sdd import data, models
from keras_sdd.config import StudyConfig, validate
from keras_sdd.errors import ConfigError
from keras_sdd.pruning import masks as mask_lib
from keras_sdd.pruning import methods, tfmot_bridge
from keras_sdd.study import evaluate
from keras_sdd.study.board import EpochScalars, StudyBoard, curve_png
from keras_sdd.study.checkpoints import StudyCheckpoints
from keras_sdd.study.records import RoundRecords, atomic_write_json, read_rounds
from keras_sdd.training import policy
from keras_sdd.training.retrain import Retrainer, snapshot

#: Settings that may differ between a study and its resumption.
RESUMABLE_CHANGES = ("resume", "logdir", "checkpoint_every_secs", "eval_every_epochs")


def round_targets(config: StudyConfig) -> List[float]:
    """Target global sparsity of every round, round 0 (dense) included."""
    targets = mask_lib.round_targets(config.prune_fraction, config.final_sparsity)
    if config.max_rounds:
        targets = targets[: config.max_rounds]
    return [0.0] + targets


def _fmt_secs(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


def check_study_dir(config: StudyConfig) -> pathlib.Path:
    """Checks, without writing anything, that the study may run in ``config.logdir``; returns that folder.

    Refuses to write into a directory that already holds results unless --resume is given, and refuses to
    resume a study with different settings: results already written are never damaged.
    """
    study_dir = pathlib.Path(config.logdir)
    saved = study_dir / "config.json"
    if saved.exists():
        if not config.resume:
            raise ConfigError(f"{study_dir} already holds a study; pass --resume to continue it, or choose "
                              "another --logdir")
        old = StudyConfig.from_dict(json.loads(saved.read_text()))
        keep = {k: getattr(config, k) for k in RESUMABLE_CHANGES}
        if old.replace(**keep) != config:
            diff = [f"--{k}: {getattr(old, k)!r} -> {getattr(config, k)!r}"
                    for k in config.to_dict() if getattr(old, k) != getattr(config, k) and k not in keep]
            raise ConfigError(f"cannot resume {study_dir}: settings differ from the saved study ({'; '.join(diff)})")
    elif study_dir.exists() and (not study_dir.is_dir() or any(study_dir.iterdir())):
        raise ConfigError(f"{study_dir} exists and is not an empty folder; choose another --logdir")
    return study_dir


def create_study_dir(config: StudyConfig, record_files: Optional[Dict[str, str]] = None) -> pathlib.Path:
    """Creates the study directory with ``config.json`` (kept as it is when resuming) and ``record_files``
    (e.g. the app's ``flags.txt``; a resumed study's copy gets a ``.resumed`` name, never overwriting)."""
    study_dir = check_study_dir(config)
    study_dir.mkdir(parents=True, exist_ok=True)
    saved = study_dir / "config.json"
    resumed = saved.exists()
    if not resumed:
        atomic_write_json(saved, config.to_dict())
    for name, text in (record_files or {}).items():
        path = study_dir / name
        if resumed and path.exists():
            path = path.with_name(f"{path.stem}.resumed{path.suffix}")
        path.write_text(text)
    return study_dir


class _EpochCheckpoint(tf_keras.callbacks.Callback):
    """Saves the latest epoch of a round at most every ``every_secs`` seconds (never its last epoch: the runner
    saves that once the masks are re-applied)."""

    def __init__(self, ckpts: StudyCheckpoints, round_index: int, epochs: int, every_secs: float):
        super().__init__()
        self.ckpts, self.round_index, self.epochs, self.every = ckpts, round_index, epochs, every_secs
        self._last = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 < self.epochs and time.monotonic() - self._last >= self.every:
            self.ckpts.save_latest(self.round_index, epoch + 1)
            self._last = time.monotonic()


class _RewindCapture(tf_keras.callbacks.Callback):
    """Captures the dense run's weights after ``step`` optimizer steps (weight rewinding, k > 0)."""

    def __init__(self, step: int, on_capture):
        super().__init__()
        self.step, self.on_capture, self.done = step, on_capture, False

    def on_train_batch_end(self, batch, logs=None):
        if not self.done and int(self.model.optimizer.iterations.numpy()) >= self.step:
            self.on_capture(snapshot(self.model))
            self.done = True


def _save_snapshot(path: pathlib.Path, snap) -> None:
    arrays = {f"{name}::{i}": w for name, ws in snap.items() for i, w in enumerate(ws)}
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def _load_snapshot(path: pathlib.Path):
    snap: Dict[str, list] = {}
    with np.load(path) as f:
        for key in sorted(f.files, key=lambda k: (k.rsplit("::", 1)[0], int(k.rsplit("::", 1)[1]))):
            snap.setdefault(key.rsplit("::", 1)[0], []).append(f[key])
    return snap


def _set_threads(n: int) -> None:
    """TensorFlow's thread pools are fixed once its runtime starts; say so instead of failing."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:
        if tf.config.threading.get_intra_op_parallelism_threads() != n:
            logging.warning("--threads=%d ignored: TensorFlow's runtime had already started in this process", n)


class SDDStudy:
    """Runs one study described by a StudyConfig; ``run()`` returns the summary written to summary.json."""

    def __init__(self, config: StudyConfig):
        self.config = validate(config)
        self.gradual = methods.is_gradual(config.prune_method)
        if self.gradual and config.retrain in ("weight_rewind", "scratch"):
            raise ConfigError(f"--prune_method={config.prune_method} prunes during training; it works with "
                              "--retrain=lr_rewind or finetune, not with rewinding or re-initialising weights")

    # ----------------------------------------------------------------------------------------------------
    def _build(self):
        c = self.config
        if c.threads:
            _set_threads(c.threads)
        tf_keras.utils.set_random_seed(c.seed)
        if c.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.bundle = data.load(c.dataset, **c.data_options())
        info = self.bundle.info
        self.steps_per_epoch = self.bundle.steps_per_epoch(c.batch_size)
        if self.gradual:
            steps = self._gradual_steps(c.round_epochs)
            if c.prune_frequency > steps:
                raise ConfigError(f"--prune_frequency={c.prune_frequency} exceeds the {steps} steps over which a "
                                  "round prunes (the first half of its training): tfmot would prune nothing at "
                                  "all; lower it")
        plain = models.build(c.model, info.input_shape, info.num_classes, **c.model_options())
        self.scope = tfmot_bridge.PruneScope(only_dense=c.prune_only_dense, keep_output_dense=c.keep_output_dense)
        self.model = tfmot_bridge.wrap(plain, self.scope)
        if not tfmot_bridge.wrappers(self.model):
            raise ConfigError(f"nothing to prune: {c.model} has no Dense/Conv layer left in scope with "
                              f"--prune_only_dense={c.prune_only_dense} --keep_output_dense={c.keep_output_dense}")
        self.params = models.count_params(self.model)
        self.schedule = policy.make_schedule(c, self.steps_per_epoch)
        self.optimizer = policy.make_optimizer(c, self.schedule)
        policy.add_l2_penalty(self.model, c.l2, models.prunable_weights(self.model))
        self.model.compile(
            optimizer=self.optimizer,
            loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            steps_per_execution=c.steps_per_execution)
        self.optimizer.build(self.model.trainable_variables)

        def fresh_init(round_index: int):
            seed = c.seed + 1_000_003 * round_index
            return snapshot(models.build(c.model, info.input_shape, info.num_classes,
                                         **{**c.model_options(), "seed": seed}))

        self.retrainer = Retrainer(c.retrain, optimizer=self.optimizer, schedule=self.schedule,
                                   finetune_lr=c.finetune_lr, rewind={}, fresh_init=fresh_init)

    def _open_outputs(self) -> None:
        """The study directory's writers; called once data and model are known to be good."""
        c = self.config
        self.rewind_path = self.study_dir / "rewind_weights.npz"
        if c.retrain == "weight_rewind":
            if c.rewind_step == 0 and not self.rewind_path.exists():
                _save_snapshot(self.rewind_path, snapshot(self.model))
            if self.rewind_path.exists():
                self.retrainer.rewind = _load_snapshot(self.rewind_path)
        self.ckpts = StudyCheckpoints(self.study_dir, self.model, self.optimizer)
        self.board = StudyBoard(self.study_dir)

    def _gradual_steps(self, epochs: int) -> int:
        """tfmot's gradual methods prune during the first half of a round, then train at the reached sparsity."""
        return max(1, self.steps_per_epoch * epochs // 2)

    def _set_gradual_schedule(self, round_index: int, target: float, previous: float, epochs: int) -> None:
        method = methods.PRUNING_METHODS.get(self.config.prune_method)
        freq = self.config.prune_frequency
        end = max(freq, self._gradual_steps(epochs) // freq * freq)  # a multiple of freq: the target is reached
        sched = method.schedule(target, initial_sparsity=previous, begin_step=0, end_step=end, frequency=freq)
        tfmot_bridge.set_schedule(self.model, sched)  # rebuilds the train function: the schedule is traced

    # ----------------------------------------------------------------------------------------------------
    def _train_round(self, k: int, start_epoch: int, epochs: int) -> None:
        c = self.config
        if start_epoch >= epochs:
            return
        callbacks: List[tf_keras.callbacks.Callback] = [
            _EpochCheckpoint(self.ckpts, k, epochs, c.checkpoint_every_secs),
            EpochScalars(self.board.round_writer(k), self.schedule)]
        if self.gradual:
            import tensorflow_model_optimization as tfmot

            callbacks.append(tfmot.sparsity.keras.UpdatePruningStep())
        if k == 0 and c.retrain == "weight_rewind" and not self.rewind_path.exists():
            def keep(snap):
                _save_snapshot(self.rewind_path, snap)
                self.retrainer.rewind = snap
            callbacks.append(_RewindCapture(c.rewind_step, keep))
        validation = None
        if c.eval_every_epochs and self.bundle.val is not None:
            validation = self.bundle.eval_dataset("val", c.batch_size)
        ds = self.bundle.train_dataset(c.batch_size, seed=c.seed * 10007 + k, initial_epoch=start_epoch,
                                       epochs=epochs)
        self.model.fit(ds, epochs=epochs, initial_epoch=start_epoch, steps_per_epoch=self.steps_per_epoch,
                       callbacks=callbacks, verbose=0, validation_data=validation,
                       validation_freq=max(1, c.eval_every_epochs))
        if k == 0 and c.retrain == "weight_rewind" and not self.rewind_path.exists():
            raise ConfigError(f"--rewind_step={c.rewind_step} is beyond the {epochs * self.steps_per_epoch} steps "
                              "of the dense run")

    def _evaluate(self, k: int, target: float, epochs: int, wall: float) -> Dict[str, Any]:
        c = self.config
        b = max(c.batch_size, 256)
        report = tfmot_bridge.sparsity_report(self.model)
        train = evaluate.split_metrics(self.model, self.bundle, "train", b)
        test = evaluate.split_metrics(self.model, self.bundle, "test", b)
        if self.bundle.val is not None:
            val = evaluate.split_metrics(self.model, self.bundle, "val", b)
        else:
            val = dict.fromkeys(("noisy_accuracy", "noisy_loss", "clean_accuracy"), float("nan"))
        return {
            "round": k, "target_sparsity": target, "sparsity": report.global_sparsity,
            "remaining_params": self.params.total - report.pruned, "pruned_params": report.pruned,
            "prunable_params": report.prunable, "total_params": self.params.total,
            "collapsed_layers": list(report.collapsed), "epochs": epochs,
            "train_noisy_accuracy": train["noisy_accuracy"], "train_noisy_loss": train["noisy_loss"],
            "train_clean_accuracy": train["clean_accuracy"], "train_clean_loss": train["clean_loss"],
            "memorized_fraction": train["memorized_fraction"],
            "val_accuracy": val["noisy_accuracy"], "val_loss": val["noisy_loss"],
            "val_clean_accuracy": val["clean_accuracy"],
            "test_accuracy": test["clean_accuracy"], "test_loss": test["clean_loss"],
            "wall_time_s": wall, "per_layer_sparsity": {k2: round(v, 6) for k2, v in report.per_layer.items()},
        }

    # ----------------------------------------------------------------------------------------------------
    def run(self, record_files: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
        """Runs or resumes the study. Bad input (settings, study directory, data, model) is refused before
        anything is written; ``record_files`` (name -> text, e.g. the flags) are written beside config.json."""
        c = self.config
        self.study_dir = check_study_dir(c)
        t_start = time.monotonic()
        self._build()
        create_study_dir(c, record_files)
        self._open_outputs()
        records = RoundRecords(self.study_dir)
        done = set(records.done())
        latest: Optional[tuple] = self.ckpts.restore_latest() if c.resume else None
        if done and latest is None:
            raise ConfigError(f"cannot resume {self.study_dir}: rounds.csv has rounds but checkpoints/ holds no "
                              "checkpoint to continue from; start a new study in another --logdir")
        if latest:
            logging.info("resuming %s from round %d, epoch %d", self.study_dir, *latest)
        targets = round_targets(c)
        total = len(targets) - 1
        logging.info("study %s: %s on %s (%d train / %d val / %d test, noise %s %.0f%% → measured %.2f%%), "
                     "%d prunable of %d parameters, %d pruning rounds to %.2f%% sparsity",
                     self.study_dir, c.model, c.dataset, self.bundle.info.train_size, self.bundle.info.val_size,
                     self.bundle.info.test_size, c.noise_type, 100 * c.noise_rate,
                     100 * self.bundle.info.train_noise_rate, self.params.prunable, self.params.total, total,
                     100 * targets[-1])
        round_times: List[float] = []
        for k, target in enumerate(targets):
            if k in done:
                continue
            t0 = time.monotonic()
            epochs = c.epochs if k == 0 else c.round_epochs
            start_epoch = 0
            if latest is not None and latest[0] == k:
                start_epoch = latest[1]                      # resumed inside (or at the end of) this round
                self.retrainer.set_learning_rate(k)
                if self.gradual and k > 0:
                    self._set_gradual_schedule(k, target, targets[k - 1], epochs)
            else:
                if latest is not None and latest[0] != k - 1:
                    raise ConfigError(f"cannot resume {self.study_dir}: its checkpoint is of round {latest[0]} "
                                      f"but round {k} is the first one missing from rounds.csv")
                if k > 0:
                    if self.gradual:
                        tfmot_bridge.set_pruning_step(self.model, 0)
                        self._set_gradual_schedule(k, target, targets[k - 1], epochs)
                    else:
                        report = tfmot_bridge.prune(self.model, target, c.prune_method, seed=c.seed + k)
                        if report.collapsed:
                            logging.warning("round %d: layer collapse — pruned to 100%%: %s", k,
                                            ", ".join(report.collapsed))
                self.retrainer.before_round(self.model, k)
            self._train_round(k, start_epoch, epochs)
            tfmot_bridge.apply_masks(self.model)
            self.ckpts.save_round(k, epochs)
            latest = (k, epochs)
            row = self._evaluate(k, target, epochs, time.monotonic() - t0)
            if self.gradual and row["collapsed_layers"]:
                logging.warning("round %d: layer collapse — pruned to 100%%: %s", k,
                                ", ".join(row["collapsed_layers"]))
            records.append(row)
            self.board.log_round(row)
            round_times.append(time.monotonic() - t0)
            left = (total - k) * float(np.mean(round_times[1:] or round_times))
            logging.info("round %d/%d  sparsity %6.2f%%  train acc noisy %5.1f%% clean %5.1f%%  test acc %5.1f%%  "
                         "[%s elapsed, ~%s left]", k, total, 100 * row["sparsity"], 100 * row["train_noisy_accuracy"],
                         100 * row["train_clean_accuracy"], 100 * row["test_accuracy"],
                         _fmt_secs(time.monotonic() - t_start), _fmt_secs(left))
        rows = read_rounds(self.study_dir)
        png = curve_png(rows, title=f"{c.model} on {c.dataset}, {c.noise_type} noise {100 * c.noise_rate:.0f}%")
        (self.study_dir / "sdd_curve.png").write_bytes(png)
        self.board.log_curve(png, step=len(rows) - 1)
        summary = self._summary(rows, time.monotonic() - t_start)
        atomic_write_json(self.study_dir / "summary.json", summary)
        return summary

    def _summary(self, rows: List[Dict[str, Any]], wall: float) -> Dict[str, Any]:
        c = self.config
        test = [r["test_accuracy"] for r in rows]
        val = [r["val_accuracy"] for r in rows]
        best_val = int(np.nanargmax(val)) if any(v == v for v in val) else None
        return {
            "config": c.to_dict(), "dataset": self.bundle.info.to_dict(),
            "params": {"prunable": self.params.prunable, "total": self.params.total},
            "rounds_planned": len(round_targets(c)), "rounds_done": len(rows),
            "complete": len(rows) == len(round_targets(c)),
            "dense_test_accuracy": test[0] if test else None,
            "best_val_round": best_val,
            "best_val_round_sparsity": rows[best_val]["sparsity"] if best_val is not None else None,
            "best_val_round_test_accuracy": rows[best_val]["test_accuracy"] if best_val is not None else None,
            "wall_time_s_this_run": wall,
            "wall_time_s_all_rounds": float(sum(r["wall_time_s"] for r in rows)),
        }


def run_study(config: StudyConfig, record_files: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Runs (or resumes) the study and returns its summary."""
    return SDDStudy(config).run(record_files)
