"""The SDD study on the Keras 3 path (``python -m apps.sdd ... --keras=3``; ``runner.run_study`` dispatches here on
``config.keras``): the same rounds, data stream, masks and study directory as the tf_keras runner
(``keras_sdd.study.runner``), trained by a plain Keras 3 model.

What is the same: the data bundle and its training stream (round k, epoch e visits the batches drawn from
``(seed, "shuffle", k)`` and e), the round targets (``round_targets``), the shared numpy mask selection
(``keras_sdd.pruning.methods``; global magnitude by default) put on the kernels through their variables'
constraints (``keras_sdd.keras3.kernel_masks``), the policy restarted every round (``--retrain=lr_rewind``), the
evaluation (``evaluate.metrics_of``, ``calibration.calibration_metrics`` on numpy logits), the round row
(``records.COLUMNS``), ``config.json`` / ``rounds.csv`` / ``summary.json`` / ``sdd_curve.png`` / ``predictions/`` and
the round-level TensorBoard scalars. What differs: the initial weights (Keras 3's generator, same per-layer
seeds), no per-epoch TensorBoard scalars, and checkpoints: ``checkpoints/round-KKK.weights.h5`` plus the round's
masks (``round-KKK.masks.npz``) once a round is recorded. ``--resume`` works at round granularity: it restarts
the first unrecorded round from the last recorded round's checkpoint (exactly what an uninterrupted run does,
since every round prunes and then restarts the optimizer).

Supported (``config.check_keras3`` refuses the rest in one line): ``--study=sdd``, models fcn / lenet300_100,
between-round pruning methods, ``--retrain=lr_rewind``, one device. This module builds no tf_keras model and never
imports tf_keras or tfmot itself; the study helpers it shares (data, directory rules) pin ``tf.keras`` to tf_keras
for the process, which the app does anyway.
"""
from __future__ import annotations

import json
import os
import pathlib
import time
from typing import Any, Dict, List, Optional

import keras
import numpy as np
from absl import logging
from keras import ops

from keras_sdd import data, seeds
from keras_sdd.analysis import calibration, curves
from keras_sdd.analysis import energy as analysis_energy
from keras_sdd.config import StudyConfig, validate
from keras_sdd.data import label_noise
from keras_sdd.errors import ConfigError
from keras_sdd.keras3 import flops as k3flops
from keras_sdd.keras3 import kernel_masks as km
from keras_sdd.keras3.fcn import build_fcn
from keras_sdd.keras3.optimizer_reset import reset_optimizer
from keras_sdd.keras3.policy import make_optimizer, make_schedule
from keras_sdd.pruning import masks as mask_lib
from keras_sdd.pruning.methods import PRUNING_METHODS
from keras_sdd.pruning.scope import PruneScope
from keras_sdd.study import directory, evaluate, paths
from keras_sdd.study.board import StudyBoard, curve_png
from keras_sdd.study.round_plan import epochs_of_round, round_targets
from keras_sdd.study.records import RoundRecords, atomic_write_json, is_number, read_rounds
from keras_sdd.study.storage import writing
from keras_sdd.study.summary import early_stop_entry, study_summary

__all__ = ["run_study", "plan", "round_targets", "execution_steps", "weights_path", "masks_path"]


def weights_path(root, k: int) -> pathlib.Path:
    """Round k's weights (Keras 3 ``.weights.h5``, masks applied)."""
    return paths.StudyPaths(root).checkpoints / f"round-{k:03d}.weights.h5"


def masks_path(root, k: int) -> pathlib.Path:
    """Round k's masks ({kernel path: 0/1 float32}, npz)."""
    return paths.StudyPaths(root).checkpoints / f"round-{k:03d}.masks.npz"


def execution_steps(steps_per_epoch: int, wanted: int) -> int:
    """Steps per compiled call: the largest divisor of ``steps_per_epoch`` up to ``wanted``. Keras 3 runs every
    call for its full ``steps_per_execution``, across the end of an epoch (Keras 2 stops a call at the epoch's
    end), so a call that does not divide the epoch would shift the epochs against the stream (same batches and
    learning rates, but epoch ends, hence callbacks and the end of ``fit``, in the wrong places)."""
    return max(d for d in range(1, min(wanted, steps_per_epoch) + 1) if steps_per_epoch % d == 0)


def plan(config: StudyConfig) -> directory.Plan:
    """Checks, writing nothing, that the study may run in ``config.logdir`` (the rules of ``directory.plan``; a
    resumed Keras 3 study restarts after its last recorded round, whose checkpoint must be there)."""
    root = pathlib.Path(config.logdir)
    if not paths.StudyPaths(root).config.exists():
        return directory.plan(config)
    directory.check_location(root)
    if not config.resume:
        raise ConfigError(f"{root} already holds a study; pass --resume to continue it, or choose another --logdir")
    directory.compare(directory.read_config(root), config, root)
    rows = RoundRecords(root).check()
    n = len(rows)
    if n:
        for p in (weights_path(root, n - 1), masks_path(root, n - 1)):
            if not p.is_file():
                raise ConfigError(f"cannot resume {root}: {p} (round {n - 1}'s Keras 3 checkpoint) is missing")
    return directory.Plan(root, True, rows, weights_path(root, n - 1) if n else None, max(n - 1, 0), 0)


def _finished(plan_: directory.Plan) -> bool:
    try:
        summary = json.loads(plan_.paths.summary.read_text())
        return bool(summary.get("complete")) and summary.get("rounds_done") == len(plan_.rows)
    except (OSError, ValueError, AttributeError):
        return False


def run_study(config: StudyConfig, record_files: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Plans (nothing written), loads the data and builds the model, then creates the directory and runs the
    rounds; returns the summary written to summary.json. A finished study is left untouched."""
    config = validate(config)
    if config.keras != "3":
        raise ConfigError(f"keras_sdd.keras3.study runs --keras=3 studies; this config has --keras={config.keras}")
    plan_ = plan(config)
    if plan_.resumed and _finished(plan_):
        logging.info("%s is already complete (%d rounds); nothing to do", plan_.root, len(plan_.rows))
        return json.loads(plan_.paths.summary.read_text())
    study = Keras3Study(config, data.load(config.dataset, **config.data_options()), plan_)
    directory.create(plan_, config, record_files)
    return study.run()


class Keras3Study:
    """One study's model, optimizer and round loop on Keras 3; ``run()`` returns the summary."""

    def __init__(self, config: StudyConfig, bundle: data.DataBundle, plan_: directory.Plan):
        import keras_sdd.models  # noqa: F401  (registers fcn, lenet300_100: their hidden widths are resolved there)
        from keras_sdd.models.registry import MODELS

        c, info = config, bundle.info
        self.config, self.bundle, self.plan = c, bundle, plan_
        self.paths = paths.StudyPaths(plan_.root)
        mo = c.model_options()
        hidden = MODELS.get(c.model).resolve(mo["width"], mo["depth"], mo["hidden"], {})["hidden"]
        self.model = build_fcn(info.input_shape, info.num_classes, hidden, seeds.derive(c.seed, "init", 0),
                               name=c.model, l2=c.l2)
        self.steps_per_epoch = bundle.steps_per_epoch(c.batch_size)
        self.optimizer = make_optimizer(c, make_schedule(c, self.steps_per_epoch))
        self.steps_per_execution = execution_steps(self.steps_per_epoch, c.steps_per_execution)
        if self.steps_per_execution != c.steps_per_execution:
            logging.info("--keras=3: %d steps per compiled call (the largest divisor of the %d steps of an epoch "
                         "up to --steps_per_execution=%d)", self.steps_per_execution, self.steps_per_epoch,
                         c.steps_per_execution)
        self.model.compile(optimizer=self.optimizer,
                           loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                           metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                           steps_per_execution=self.steps_per_execution)
        self.optimizer.build(self.model.trainable_variables)
        self.kernels = km.prunable_kernels(
            self.model, PruneScope(only_dense=c.prune_only_dense, keep_output_dense=c.keep_output_dense),
            who="--keras=3")
        if not self.kernels:
            raise ConfigError(f"nothing to prune: {c.model} has no Dense layer left in scope with "
                              f"--keep_output_dense={c.keep_output_dense}")
        km.ensure_masks(self.kernels)
        self.all_kernels = km.prunable_kernels(self.model, PruneScope(), who="--keras=3")  # nonzero_weights
        self.prune_fn = PRUNING_METHODS.get(c.prune_method)
        test = bundle.test
        self.noisy_test = (None if info.noise_type == "none" or not c.noise_rate else
                           label_noise.inject(test.y_clean, c.noise_type, c.noise_rate, info.num_classes,
                                              seeds.rng(c.seed, "noisy_test")))
        self.costs = k3flops.layer_costs(self.model)
        self.dense_flops = k3flops.forward_flops(self.costs)[1]
        self.params_total = int(self.model.count_params())
        self.meter = analysis_energy.EnergyMeter(c.co2_country) if c.track_energy else None
        self.early = (curves.EarlyStopping(c.early_stop_patience, c.early_stop_tolerance)
                      if c.early_stop_patience else None)
        self.board = StudyBoard(plan_.root, lambda k: epochs_of_round(c, k))
        self._inputs: Dict[str, np.ndarray] = {}

    # ----------------------------------------------------------------------------------------------------
    def logits(self, split: str) -> np.ndarray:
        """The model's logits on a split, in stored order, without augmentation (inputs normalised once)."""
        if split not in self._inputs:
            self._inputs[split] = np.asarray(self.bundle.normalize(self.bundle.raw_inputs(split)))
        x, b = self._inputs[split], 8192
        out = [ops.convert_to_numpy(self.model(x[i:i + b], training=False)) for i in range(0, len(x), b)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.bundle.info.num_classes),
                                                                             np.float32)

    @staticmethod
    def _layer(key: str) -> str:
        return key.split("#")[0].rsplit("/", 1)[0]

    def prune(self, k: int, target: float) -> None:
        """Round k's masks from the trained weights (shared numpy selection), then the policy restarted."""
        new = self.prune_fn(km.get_weights(self.kernels), km.get_masks(self.kernels), target,
                            seeds.derive(self.config.seed, "masks", k))
        km.assign_masks(self.kernels, new)
        gone = mask_lib.collapsed(new)
        if gone:
            logging.warning("round %d: layer collapse — pruned to 100%%: %s", k,
                            ", ".join(self._layer(g) for g in gone))
        reset_optimizer(self.optimizer)   # --retrain=lr_rewind: the schedule restarts at step 0
        km.refresh_train_function(self.model)

    def train(self, k: int, epochs: int) -> None:
        c = self.config
        stream = self.bundle.train_dataset(c.batch_size, seed=seeds.derive(c.seed, "shuffle", k), initial_epoch=0,
                                           epochs=epochs)
        self.model.fit(stream, epochs=epochs, steps_per_epoch=self.steps_per_epoch, shuffle=False, verbose=0)
        km.apply_masks(self.kernels)

    def save(self, k: int) -> None:
        """Round k's weights and masks, each written beside and moved into place."""
        w, m = weights_path(self.paths.root, k), masks_path(self.paths.root, k)
        w.parent.mkdir(parents=True, exist_ok=True)
        tmp_w, tmp_m = w.with_name(f".{w.stem}.tmp.weights.h5"), m.with_name(f".{m.stem}.tmp.npz")
        masks = km.get_masks(self.kernels)
        with writing(w, "write the round's weights"):
            self.model.save_weights(str(tmp_w))
            os.replace(tmp_w, w)
        with writing(m, "write the round's masks"):
            np.savez(tmp_m, keys=np.array(list(masks)), **{f"m{i}": v for i, v in enumerate(masks.values())})
            os.replace(tmp_m, m)

    def restore(self, k: int) -> None:
        """Round k's weights and masks back into the model."""
        self.model.load_weights(str(weights_path(self.paths.root, k)))
        with np.load(masks_path(self.paths.root, k)) as f:
            masks = {str(key): f[f"m{i}"] for i, key in enumerate(f["keys"])}
        if set(masks) != set(self.kernels):
            raise ConfigError(f"{masks_path(self.paths.root, k)} holds masks of {sorted(masks)}, the model has "
                              f"{sorted(self.kernels)}")
        km.assign_masks(self.kernels, masks)

    def evaluate(self, k: int, target: float, epochs: int, wall: float) -> Dict[str, Any]:
        c, b = self.config, self.bundle
        masks = km.get_masks(self.kernels)
        glob, per = mask_lib.sparsity(masks)
        prunable = int(sum(m.size for m in masks.values()))
        pruned = int(sum(m.size - np.count_nonzero(m) for m in masks.values()))
        logits = {s: self.logits(s) for s in ("train", "val", "test") if s != "val" or b.val is not None}
        train, test = evaluate.metrics_of(logits["train"], b.train), evaluate.metrics_of(logits["test"], b.test)
        val = (evaluate.metrics_of(logits["val"], b.val) if "val" in logits else
               dict.fromkeys(("noisy_accuracy", "noisy_loss", "clean_accuracy"), float("nan")))
        cal = calibration.calibration_metrics(
            logits["test"], b.test.y_clean, self.noisy_test if self.noisy_test is not None else b.test.y_clean,
            c.ece_bins, b.bayes_proba)
        if self.noisy_test is None:
            cal["ece_noisy"] = float("nan")
        if c.save_predictions:
            self._save_predictions(k, logits["test"])
        infer = k3flops.forward_flops(self.costs)[0]
        n = b.info.train_size
        return {
            **cal, "round": k, "target_sparsity": target, "sparsity": glob,
            "remaining_params": self.params_total - pruned, "pruned_params": pruned, "prunable_params": prunable,
            "total_params": self.params_total,
            "collapsed_layers": [self._layer(g) for g in mask_lib.collapsed(masks)], "epochs": epochs,
            "nonzero_params": int(sum(np.count_nonzero(ops.convert_to_numpy(w)) for w in self.model.weights)),
            "nonzero_weights": int(sum(np.count_nonzero(w) for w in km.get_weights(self.all_kernels).values())),
            "inference_flops": infer, "train_flops": 3.0 * infer * n * epochs,
            "train_flops_dense": 3.0 * self.dense_flops * n * epochs,
            "train_noisy_accuracy": train["noisy_accuracy"], "train_noisy_loss": train["noisy_loss"],
            "train_clean_accuracy": train["clean_accuracy"], "train_clean_loss": train["clean_loss"],
            "memorized_fraction": train["memorized_fraction"],
            "val_accuracy": val["noisy_accuracy"], "val_loss": val["noisy_loss"],
            "val_clean_accuracy": val["clean_accuracy"],
            "test_accuracy": test["clean_accuracy"], "test_loss": test["clean_loss"], "wall_time_s": wall,
            "per_layer_sparsity": {self._layer(key): round(v, 6) for key, v in per.items()},
        }

    def _save_predictions(self, k: int, test_logits: np.ndarray) -> None:
        p = self.paths
        p.predictions.mkdir(exist_ok=True)
        arrays = {"probs": calibration.softmax(test_logits).astype(np.float16), "y_clean": self.bundle.test.y_clean}
        if self.noisy_test is not None:
            arrays["y_noisy"] = self.noisy_test
        if self.bundle.bayes_proba is not None:
            arrays["bayes_proba"] = self.bundle.bayes_proba.astype(np.float32)
        tmp = p.round_predictions(k).with_name(f".round-{k:03d}.tmp.npz")
        with writing(p.round_predictions(k), "write the test predictions"):
            np.savez_compressed(tmp, **arrays)
            tmp.replace(p.round_predictions(k))

    @staticmethod
    def _accumulate(row: Dict[str, Any], previous: Optional[Dict[str, Any]]) -> None:
        for col, cum in (("train_flops", "train_flops_cum"), ("train_flops_dense", "train_flops_dense_cum"),
                         ("energy_kwh", "energy_kwh_cum"), ("co2_g", "co2_g_cum")):
            before = 0.0 if previous is None else previous.get(cum)
            row[cum] = float(before) + float(row[col]) if is_number(before) and is_number(row[col]) else float("nan")

    # ----------------------------------------------------------------------------------------------------
    def run(self) -> Dict[str, Any]:
        c, plan_ = self.config, self.plan
        t_start = time.monotonic()
        records = RoundRecords(plan_.root)
        if plan_.rows:
            self.restore(len(plan_.rows) - 1)
            logging.info("resuming %s after round %d (Keras 3: from the round's checkpoint)", plan_.root,
                         len(plan_.rows) - 1)
        self.board.log_start(c.to_dict())
        targets = round_targets(c)
        total = len(targets) - 1
        info = self.bundle.info
        logging.info("study %s (Keras %s, %s backend): %s on %s (%d train / %d val / %d test), %d prunable of %d "
                     "parameters, %d pruning rounds to %.2f%% sparsity", plan_.root, keras.__version__,
                     keras.backend.backend(), c.model, c.dataset, info.train_size, info.val_size, info.test_size,
                     sum(int(np.prod(v.shape)) for v in self.kernels.values()), self.params_total, total,
                     100 * targets[-1])
        previous = plan_.rows[-1] if plan_.rows else None
        stopped = self.early is not None and any([self.early.update(r["val_accuracy"]) for r in plan_.rows])
        if self.meter is not None and not stopped:
            self.meter.start()
        new_rows, round_times = 0, []
        for k, target in enumerate(targets):
            if k < len(plan_.rows):
                continue
            if stopped:
                break
            t0 = time.monotonic()
            if self.meter is not None:
                self.meter.begin(f"round_{k:03d}")
            epochs = epochs_of_round(c, k)
            if k > 0:
                self.prune(k, target)
            self.train(k, epochs)
            self.save(k)
            row = self.evaluate(k, target, epochs, time.monotonic() - t0)
            reading = self.meter.end() if self.meter is not None else None
            row.update(energy_kwh=reading.energy_kwh if reading else float("nan"),
                       co2_g=reading.co2_g if reading else float("nan"),
                       co2_method=reading.method if reading else "off (--notrack_energy)")
            self._accumulate(row, previous)
            previous = row
            records.append(row)
            self.board.log_round(row)
            self.board.log_weights(k, km.get_weights(self.kernels), km.get_masks(self.kernels))
            new_rows += 1
            round_times.append(time.monotonic() - t0)
            logging.info("round %d/%d  sparsity %6.2f%%  train acc noisy %5.1f%% clean %5.1f%%  test acc %5.1f%%  "
                         "[%.0fs, ~%.0fs left]", k, total, 100 * row["sparsity"], 100 * row["train_noisy_accuracy"],
                         100 * row["train_clean_accuracy"], 100 * row["test_accuracy"], time.monotonic() - t_start,
                         (total - k) * float(np.mean(round_times[1:] or round_times)))
            if self.early is not None and self.early.update(row["val_accuracy"]):
                stopped = True
                logging.info("early stop after round %d: %s", k, self.early.reason)
        if self.meter is not None:
            self.meter.stop()
        rows = read_rounds(plan_.root)
        if new_rows or not self.paths.curve.exists():
            png = curve_png(rows, title=f"{c.model} on {c.dataset}, {c.noise_type} noise {100 * c.noise_rate:.0f}% "
                                        "(Keras 3)")
            with writing(self.paths.curve, "write the curve"):
                self.paths.curve.write_bytes(png)
            if new_rows:
                self.board.log_image("sdd_curve", png, step=len(rows) - 1)
                self.board.log_summary(rows)
        summary = self.summary(rows, time.monotonic() - t_start)
        atomic_write_json(self.paths.summary, summary)
        return summary

    def summary(self, rows: List[Dict[str, Any]], wall: float) -> Dict[str, Any]:
        """The keys of the tf_keras runner's summary, plus ``keras`` (version and backend)."""
        params = {"prunable": int(sum(int(np.prod(v.shape)) for v in self.kernels.values())),
                  "total": self.params_total}
        return {**study_summary(self.config, rows, dataset=self.bundle.info.to_dict(), params=params,
                                early=early_stop_entry(self.config, self.early), wall=wall),
                "keras": {"version": keras.__version__, "backend": keras.backend.backend()}}
