"""The round loop shared by every study kind: skip if recorded │ prune │ retrain │ evaluate │ record one row.

The loop receives everything built (an ``Assembly``) and a checked ``Plan`` of where to start; it touches no
process state and reads no flags. One wrapped model, one optimizer and one compiled train function serve the
whole study: between rounds only masks are assigned and variables reset, so nothing is traced anew (tfmot's
gradual schedules are the exception: they are baked into the graph, so those rounds retrace once each).

Every step is idempotent, in the manner of open_lth: a round already in ``rounds.csv`` is skipped, and a round
cut short resumes from its latest epoch checkpoint, so ``--resume`` is the normal path, not a special one.
"""
from __future__ import annotations

import json
import pathlib
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import tf_keras
from absl import logging

from keras_sdd import console, models, seeds
from keras_sdd.callbacks.progress import EpochProgress
from keras_sdd.analysis import calibration, curves, flops
from keras_sdd.analysis import energy as analysis_energy
from keras_sdd.data import label_noise
from keras_sdd.config import StudyConfig, validate
from keras_sdd.pruning import methods, tfmot_bridge
from keras_sdd.study import directory, evaluate, paths
from keras_sdd.study.assemble import Assembly, assemble, epochs_of_round, round_targets
from keras_sdd.study.board import EpochRecorder, StudyBoard, curve_png
from keras_sdd.study.storage import writing
from keras_sdd.study.checkpoints import StudyCheckpoints
from keras_sdd.study.summary import early_stop_entry, study_summary
from keras_sdd.study.records import RoundRecords, atomic_write_json, is_number, read_rounds
from keras_sdd.training.retrain import snapshot

__all__ = ["RoundLoop", "run_study", "round_targets", "fmt_secs"]


def fmt_secs(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


class _EpochCheckpoint(tf_keras.callbacks.Callback):
    """Saves the latest epoch of a round at most every ``every_secs`` seconds (never its last epoch: the loop
    saves that once the masks are re-applied), then writes the epochs' TensorBoard scalars."""

    def __init__(self, ckpts: StudyCheckpoints, recorder: EpochRecorder, round_index: int, epochs: int,
                 every_secs: float):
        super().__init__()
        self.ckpts, self.recorder, self.round_index, self.epochs, self.every = (ckpts, recorder, round_index,
                                                                                 epochs, every_secs)
        self._last = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        self.recorder.add(epoch, logs, self.model.optimizer.iterations)
        if epoch + 1 < self.epochs and time.monotonic() - self._last >= self.every:
            self.ckpts.save_latest(self.round_index, epoch + 1)
            self.recorder.flush()
            self._last = time.monotonic()


def _save_snapshot(path, snap) -> None:
    arrays = {f"{name}::{i}": w for name, ws in snap.items() for i, w in enumerate(ws)}
    tmp = path.with_name(path.stem + ".tmp.npz")
    with writing(path, "write the rewind weights"):
        np.savez(tmp, **arrays)
        tmp.replace(path)


def _load_snapshot(path):
    snap: Dict[str, list] = {}
    with np.load(path) as f:
        for key in sorted(f.files, key=lambda k: (k.rsplit("::", 1)[0], int(k.rsplit("::", 1)[1]))):
            snap.setdefault(key.rsplit("::", 1)[0], []).append(f[key])
    return snap


class RoundLoop:
    """Runs the rounds of one study in ``plan.root``; ``run()`` returns the summary written to summary.json.

    ``summary_extra`` adds kind-specific entries (e.g. the teacher of a distillation study) to the summary;
    ``row_hooks`` add columns to each round row before it is recorded.
    """

    def __init__(self, assembly: Assembly, plan: directory.Plan, *,
                 summary_extra: Optional[Dict[str, Any]] = None,
                 row_hooks: Optional[List[Callable[[int, Dict[str, Any]], None]]] = None):
        self.a, self.plan = assembly, plan
        self.config: StudyConfig = assembly.config
        self.paths = paths.StudyPaths(plan.root)
        self.summary_extra = dict(summary_extra or {})
        self.row_hooks = list(row_hooks or [])
        self.retrainer = assembly.retrainer()
        self.ckpts = StudyCheckpoints(plan.root, assembly.student, assembly.optimizer)
        self.board = StudyBoard(plan.root, lambda k: epochs_of_round(self.config, k))
        c, info = self.config, assembly.bundle.info
        test = assembly.bundle.test
        # Noisy test labels drawn by the study's own noise process, from their own stream (calibration vs noise).
        self.noisy_test = (None if info.noise_type == "none" or not c.noise_rate else
                           label_noise.inject(test.y_clean, c.noise_type, c.noise_rate, info.num_classes,
                                              seeds.rng(c.seed, "noisy_test")))
        # The teacher's forward at its own (sparse-aware) cost: a pruned teacher is charged for the weights it keeps.
        self.teacher_flops = (flops.inference_flops(assembly.model.teacher,
                                                    flops.densities_from_zeros(assembly.model.teacher))
                              if assembly.model is not assembly.student else 0.0)
        # Seed 1's convention: every round costs the dense student's training, whatever its sparsity or teacher.
        self.dense_flops = flops.inference_flops(assembly.student, {})
        self.meter = analysis_energy.EnergyMeter(c.co2_country) if c.track_energy else None
        self.early = (curves.EarlyStopping(c.early_stop_patience, c.early_stop_tolerance)
                      if c.early_stop_patience else None)
        self.logits = evaluate.SplitLogits(assembly.student, assembly.bundle, max(c.batch_size, 256))

    # ----------------------------------------------------------------------------------------------------
    def _prepare_rewind(self) -> None:
        c, p = self.config, self.paths
        if c.retrain != "weight_rewind":
            return
        if c.rewind_step == 0 and not p.rewind.exists():
            _save_snapshot(p.rewind, snapshot(self.a.student))
        if p.rewind.exists():
            self.retrainer.rewind = _load_snapshot(p.rewind)

    def _set_gradual_schedule(self, target: float, previous: float, epochs: int) -> None:
        method = methods.PRUNING_METHODS.get(self.config.prune_method)
        freq = self.config.prune_frequency
        end = max(freq, self.a.gradual_steps(epochs) // freq * freq)  # a multiple of freq: the target is reached
        sched = method.schedule(target, initial_sparsity=previous, begin_step=0, end_step=end, frequency=freq)
        tfmot_bridge.set_schedule(self.a.student, sched)
        if self.a.model is not self.a.student and getattr(self.a.model, "train_function", None) is not None:
            self.a.model.make_train_function(force=True)

    def _train(self, k: int, start_epoch: int, epochs: int) -> Optional[EpochRecorder]:
        """Trains round k from ``start_epoch``; returns the recorder of epoch scalars not yet written (the caller
        flushes it once the round checkpoint is saved)."""
        c = self.config
        if start_epoch >= epochs:
            return None
        recorder = self.board.epoch_recorder(k, self.a.schedule)
        callbacks: List[tf_keras.callbacks.Callback] = [
            _EpochCheckpoint(self.ckpts, recorder, k, epochs, c.checkpoint_every_secs)]
        if console.wants_progress():
            callbacks.append(EpochProgress(label=f"round {k}", log=lambda line: logging.info("%s", line)))
        if self.a.gradual:
            import tensorflow_model_optimization as tfmot

            callbacks.append(tfmot.sparsity.keras.UpdatePruningStep())
        if k == 0 and c.retrain == "weight_rewind" and not self.paths.rewind.exists():
            from keras_sdd.callbacks.rewind import RewindCapture

            def keep(_):
                snap = snapshot(self.a.student)
                _save_snapshot(self.paths.rewind, snap)
                self.retrainer.rewind = snap
            callbacks.append(RewindCapture(c.rewind_step, keep))
        validation = None
        if c.eval_every_epochs and self.a.bundle.val is not None:
            validation = self.a.bundle.eval_dataset("val", c.batch_size)
        self.a.model.fit(self.a.train_dataset(k, start_epoch, epochs), epochs=epochs, initial_epoch=start_epoch,
                         steps_per_epoch=self.a.steps_per_epoch, callbacks=callbacks, verbose=0,
                         validation_data=validation, validation_freq=max(1, c.eval_every_epochs))
        return recorder

    def _evaluate(self, k: int, target: float, epochs: int, wall: float) -> Dict[str, Any]:
        c, a = self.config, self.a
        report = tfmot_bridge.sparsity_report(a.student)
        logits = {s: self.logits(s) for s in ("train", "val", "test") if s != "val" or a.bundle.val is not None}
        train = evaluate.metrics_of(logits["train"], a.bundle.train)
        test = evaluate.metrics_of(logits["test"], a.bundle.test)
        if "val" in logits:
            val = evaluate.metrics_of(logits["val"], a.bundle.val)
        else:
            val = dict.fromkeys(("noisy_accuracy", "noisy_loss", "clean_accuracy"), float("nan"))
        cal = calibration.calibration_metrics(
            logits["test"], a.bundle.test.y_clean,
            self.noisy_test if self.noisy_test is not None else a.bundle.test.y_clean, c.ece_bins,
            a.bundle.bayes_proba)
        if self.noisy_test is None:
            cal["ece_noisy"] = float("nan")
        if c.save_predictions:
            self._save_predictions(k, logits["test"])
        densities = {key: 1.0 - v for key, v in report.per_layer.items()}
        infer = flops.inference_flops(a.student, densities)
        n = a.bundle.info.train_size
        train_flops = 3.0 * infer * n * epochs
        if self.teacher_flops:   # the teacher's forward: every step when uncached, once for the study when cached
            train_flops += self.teacher_flops * n * (epochs if a.teacher_logits is None else (1 if k == 0 else 0))
        return {
            **cal, "nonzero_params": models.count_nonzero(a.student),
            "nonzero_weights": models.count_nonzero_weights(a.student), "inference_flops": infer,
            "train_flops": train_flops, "train_flops_dense": 3.0 * self.dense_flops * n * epochs,
            "round": k, "target_sparsity": target, "sparsity": report.global_sparsity,
            "remaining_params": a.params.total - report.pruned, "pruned_params": report.pruned,
            "prunable_params": report.prunable, "total_params": a.params.total,
            "collapsed_layers": list(report.collapsed), "epochs": epochs,
            "train_noisy_accuracy": train["noisy_accuracy"], "train_noisy_loss": train["noisy_loss"],
            "train_clean_accuracy": train["clean_accuracy"], "train_clean_loss": train["clean_loss"],
            "memorized_fraction": train["memorized_fraction"],
            "val_accuracy": val["noisy_accuracy"], "val_loss": val["noisy_loss"],
            "val_clean_accuracy": val["clean_accuracy"],
            "test_accuracy": test["clean_accuracy"], "test_loss": test["clean_loss"],
            "wall_time_s": wall, "per_layer_sparsity": {k2: round(v, 6) for k2, v in report.per_layer.items()},
        }

    def _save_predictions(self, k: int, test_logits: np.ndarray) -> None:
        """The round's test probabilities (float16) with both label sets, for reliability diagrams."""
        p = self.paths
        p.predictions.mkdir(exist_ok=True)
        arrays = {"probs": calibration.softmax(test_logits).astype(np.float16),
                  "y_clean": self.a.bundle.test.y_clean}
        if self.noisy_test is not None:
            arrays["y_noisy"] = self.noisy_test
        if self.a.bundle.bayes_proba is not None:
            arrays["bayes_proba"] = self.a.bundle.bayes_proba.astype(np.float32)
        tmp = p.round_predictions(k).with_name(f".round-{k:03d}.tmp.npz")
        with writing(p.round_predictions(k), "write the test predictions"):
            np.savez_compressed(tmp, **arrays)
            tmp.replace(p.round_predictions(k))

    @staticmethod
    def _accumulate(row: Dict[str, Any], previous: Optional[Dict[str, Any]]) -> None:
        """Cumulative cost columns: this round's plus the previous row's cumulative value (NaN once unknown)."""
        for col, cum in (("train_flops", "train_flops_cum"), ("train_flops_dense", "train_flops_dense_cum"),
                         ("energy_kwh", "energy_kwh_cum"), ("co2_g", "co2_g_cum")):
            before = 0.0 if previous is None else previous.get(cum)
            row[cum] = float(before) + float(row[col]) if is_number(before) and is_number(row[col]) else float("nan")

    # ----------------------------------------------------------------------------------------------------
    def run(self) -> Dict[str, Any]:
        c, a, plan = self.config, self.a, self.plan
        t_start = time.monotonic()
        records = RoundRecords(plan.root)
        done = {int(r["round"]) for r in plan.rows}
        latest = None
        if plan.restore is not None:
            self.ckpts.restore(plan.restore)
            latest = (plan.round, plan.epoch)
            if plan.note:
                logging.info("%s: %s", plan.root, plan.note)
            else:
                logging.info("resuming %s from round %d, epoch %d", plan.root, *latest)
        self._prepare_rewind()
        self.board.log_start(c.to_dict())
        targets = round_targets(c)
        total = len(targets) - 1
        info = a.bundle.info
        logging.info("study %s: %s on %s (%d train / %d val / %d test, noise %s %.0f%% → %.2f%% of the training "
                     "labels wrong, %.2f%% expected), %d prunable of %d parameters, %d pruning rounds to %.2f%% "
                     "sparsity", plan.root, c.model, c.dataset, info.train_size, info.val_size, info.test_size,
                     c.noise_type, 100 * c.noise_rate, 100 * info.train_noise_rate,
                     100 * label_noise.expected_wrong_fraction(info.noise_type, info.noise_rate, info.num_classes),
                     a.params.prunable, a.params.total, total, 100 * targets[-1])
        if not plan.rows and "teacher" in self.summary_extra:
            teacher = self.summary_extra["teacher"]
            self.board.log_text("teacher", json.dumps(teacher, indent=1, default=str))
            self.board.log_round({"round": 0, "sparsity": 0.0, **{f"teacher_{k}": v for k, v in teacher.items()}},
                                 only=("teacher_sparsity", "teacher_test_accuracy", "teacher_round"))
        round_times: List[float] = []
        new_rows = 0
        previous = plan.rows[-1] if plan.rows else None
        stopped = self._replay_early_stop(plan.rows)
        if self.meter is not None and not stopped:
            self.meter.start()
        for k, target in enumerate(targets):
            if k in done:
                continue
            if stopped:
                break
            t0 = time.monotonic()
            if self.meter is not None:
                self.meter.begin(f"round_{k:03d}")
            epochs = epochs_of_round(c, k)
            start_epoch = 0
            if latest is not None and latest[0] == k:
                start_epoch = latest[1]                      # resumed inside (or at the end of) this round
                self.retrainer.set_learning_rate(k)
                if a.gradual and k > 0:
                    self._set_gradual_schedule(target, targets[k - 1], epochs)
            else:
                if k > 0:
                    if a.gradual:
                        tfmot_bridge.set_pruning_step(a.student, 0)
                        self._set_gradual_schedule(target, targets[k - 1], epochs)
                    else:
                        report = tfmot_bridge.prune(a.student, target, c.prune_method,
                                                    seed=seeds.derive(c.seed, "masks", k))
                        if report.collapsed:
                            logging.warning("round %d: layer collapse — pruned to 100%%: %s", k,
                                            ", ".join(report.collapsed))
                self.retrainer.before_round(a.student, k)
            recorder = self._train(k, start_epoch, epochs)
            tfmot_bridge.apply_masks(a.student)
            self.ckpts.save_round(k, epochs)
            if recorder is not None:
                recorder.flush()
            latest = (k, epochs)
            row = self._evaluate(k, target, epochs, time.monotonic() - t0)
            reading = self.meter.end() if self.meter is not None else None
            row.update(energy_kwh=reading.energy_kwh if reading else float("nan"),
                       co2_g=reading.co2_g if reading else float("nan"),
                       co2_method=reading.method if reading else "off (--notrack_energy)")
            self._accumulate(row, previous)
            previous = row
            for hook in self.row_hooks:
                hook(k, row)
            if a.gradual and row["collapsed_layers"]:
                logging.warning("round %d: layer collapse — pruned to 100%%: %s", k, ", ".join(row["collapsed_layers"]))
            records.append(row)
            self.publish(k, row)
            new_rows += 1
            round_times.append(time.monotonic() - t0)
            left = (total - k) * float(np.mean(round_times[1:] or round_times))
            logging.info("round %d/%d  sparsity %6.2f%%  train acc noisy %5.1f%% clean %5.1f%%  test acc %5.1f%%  "
                         "[%s elapsed, ~%s left]", k, total, 100 * row["sparsity"], 100 * row["train_noisy_accuracy"],
                         100 * row["train_clean_accuracy"], 100 * row["test_accuracy"],
                         fmt_secs(time.monotonic() - t_start), fmt_secs(left))
            if self.early is not None and self.early.update(row["val_accuracy"]):
                stopped = True
                logging.info("early stop after round %d: %s", k, self.early.reason)
        if self.meter is not None:
            self.meter.stop()
        rows = read_rounds(plan.root)
        self.finish_curve(rows, bool(new_rows),
                          f"{c.model} on {c.dataset}, {c.noise_type} noise {100 * c.noise_rate:.0f}%")
        summary = self.summary(rows, time.monotonic() - t_start)
        atomic_write_json(self.paths.summary, summary)
        return summary

    def publish(self, k: int, row: Dict[str, Any]) -> None:
        """Logs a recorded round to TensorBoard: the row, the surviving kernels, the test predictions."""
        a, c = self.a, self.config
        self.board.log_round(row)
        self.board.log_weights(k, tfmot_bridge.get_weights(a.student), tfmot_bridge.get_masks(a.student))
        self.board.log_predictions(k, calibration.softmax(self.logits("test")), a.bundle.test.y_clean,
                                   self.noisy_test, a.bundle.bayes_proba, c.ece_bins)

    def finish_curve(self, rows: List[Dict[str, Any]], new_rows: bool, title: str) -> None:
        """``sdd_curve.png`` (and, after new rounds, its TensorBoard image and the summary metrics)."""
        if new_rows or not self.paths.curve.exists():
            png = curve_png(rows, title=title)
            with writing(self.paths.curve, "write the curve"):
                self.paths.curve.write_bytes(png)
            if new_rows:
                self.board.log_image("sdd_curve", png, step=len(rows) - 1)
                self.board.log_summary(rows)

    def _replay_early_stop(self, rows: List[Dict[str, Any]]) -> bool:
        """Feeds the recorded rounds to the early-stopping rule (a resumed study stops where it stopped)."""
        if self.early is None:
            return False
        return any([self.early.update(r["val_accuracy"]) for r in rows])

    def summary(self, rows: List[Dict[str, Any]], wall: float) -> Dict[str, Any]:
        return {**study_summary(self.config, rows, dataset=self.a.bundle.info.to_dict(),
                                params={"prunable": self.a.params.prunable, "total": self.a.params.total},
                                early=early_stop_entry(self.config, self.early), wall=wall),
                **self.summary_extra}


def run_study(config: StudyConfig, record_files: Optional[Dict[str, str]] = None, **kind_options) -> Dict[str, Any]:
    """Runs (or resumes) the study of ``config.study`` and returns its summary (see ``keras_sdd.study.kinds``)."""
    from keras_sdd.study import kinds

    config = validate(config)
    if config.keras == "3":   # --keras=3: the same study on the Keras 3 path
        from keras_sdd.keras3 import study as keras3_study

        return keras3_study.run_study(config, record_files)
    return kinds.STUDY_KINDS.get(config.study).run(config, record_files, **kind_options)


def run_sdd(config: StudyConfig, record_files: Optional[Dict[str, str]] = None, *, teacher=None,
            summary_extra: Optional[Dict[str, Any]] = None, strategy=None) -> Dict[str, Any]:
    """Plans (nothing written), assembles (data and model known good), then creates the directory and runs the
    round loop; the plain SDD study, and with ``teacher`` the distillation one.

    Under ``--strategy`` the model is built in the strategy's scope (masks are variables of the replicated model:
    one global threshold, computed once from the primary copy, assigned to every replica). In a multi-worker
    cluster only the chief writes the study directory; the other workers run the same steps, restoring from the
    chief's checkpoints, and write into a private temporary folder."""
    from keras_sdd import process

    if strategy is None:
        strategy = process.make_strategy(config.strategy)
    plan = directory.plan(config)
    if plan.resumed and _finished(plan, config):
        logging.info("%s is already complete (%d rounds); nothing to do", plan.root, len(plan.rows))
        return json.loads(plan.paths.summary.read_text())
    assembly = assemble(config, teacher=teacher, strategy=strategy)
    if not process.is_chief(strategy):
        import dataclasses
        import tempfile

        plan = dataclasses.replace(plan, root=pathlib.Path(tempfile.mkdtemp(prefix="keras_sdd_worker_")),
                                   resumed=False)
        config = config.replace(logdir=str(plan.root))
        record_files = None
    directory.create(plan, config, record_files)
    return RoundLoop(assembly, plan, summary_extra=summary_extra).run()


def _finished(plan: directory.Plan, config: StudyConfig) -> bool:
    """A resumed study whose summary says it is complete (every round recorded, or stopped early) for exactly
    the rounds recorded: nothing left to do or write."""
    try:
        summary = json.loads(plan.paths.summary.read_text())
        return bool(summary.get("complete")) and summary.get("rounds_done") == len(plan.rows)
    except (OSError, ValueError, AttributeError):
        return False
