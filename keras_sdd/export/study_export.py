"""One study directory's round exported and measured against its dense round 0 exported the same way.

``plan.plan_export`` makes every cheap check (the study, the round, the format, ``--out``); ``export_study``
then rebuilds the round (``keras_sdd.study.loading``, wrappers stripped), puts the study's input normalisation
in front of it, writes it atomically to ``out``, exports round 0 the same way into a temporary folder, and
measures both files. The study directory is only read.
"""
from __future__ import annotations

import pathlib
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from keras_sdd.errors import ConfigError
from keras_sdd.export import deployable, measure, tflite, writer
from keras_sdd.export.plan import ExportPlan, plan_export  # noqa: F401  (plan_export: part of this API)
from keras_sdd.study.loading import load_round

#: Batch sizes of the latency measurement.
LATENCY_BATCHES = (1, 128)
#: Largest difference (accuracy, 0..1) between TFLite's two runtimes on one file that passes without a warning.
CROSS_CHECK_TOLERANCE = 0.005


@dataclass
class Measured:
    """One exported file: its round, weights, size, accuracy and latency (seconds per example, by batch)."""

    round: int
    sparsity: Optional[float]
    remaining_params: Optional[int]
    kernel_weights: Optional[int]       # recorded non-zero kernel weights: seed 2's effective parameters
    nonzero_entries: int
    total_weights: int
    size_bytes: int
    gzip_bytes: int
    test_accuracy: float
    recorded_test_accuracy: Optional[float]
    latency_s: Dict[int, float] = field(default_factory=dict)
    #: TFLite: the file's test accuracy under the other runtime (a cross-check of the interpreter's kernels).
    other_runtime_accuracy: Optional[float] = None


@dataclass
class ExportResult:
    """The export at ``out`` and the dense round 0 exported the same way."""

    study_dir: str
    out: str
    fmt: str
    quantize: str
    runtime: str
    exported: Measured
    dense: Measured
    warnings: List[str] = field(default_factory=list)

    def ratio(self, what: str, batch: Optional[int] = None) -> Optional[float]:
        """exported / dense of ``size_bytes``, ``gzip_bytes``, ``nonzero_entries`` or ``latency_s`` (by batch)."""
        a, b = getattr(self.exported, what), getattr(self.dense, what)
        if batch is not None:
            a, b = a.get(batch), b.get(batch)
        return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _write(plan: ExportPlan, k: int, model, out: pathlib.Path, representative) -> None:
    try:
        writer.export_model(model, out, plan.fmt, plan.quantize, representative)
    except writer.ExportRefused as e:
        raise ConfigError(f"cannot export round {k} of {plan.study_dir}: {e}") from None


def _measure(plan: ExportPlan, k: int, stripped, path: pathlib.Path, runner, x, y) -> Measured:
    row = plan.rows[k]
    count = deployable.weight_count(stripped)
    pruned = row.get("pruned_params")
    if isinstance(pruned, int) and count.total - count.nonzero < pruned:
        raise ConfigError(f"round {k} of {plan.study_dir}: the rebuilt model has {count.total - count.nonzero} zero "
                          f"weights but the study pruned {pruned}; its checkpoint does not match rounds.csv")
    size = measure.file_size(path)
    return Measured(k, row.get("sparsity"), row.get("remaining_params"), row.get("nonzero_weights"), count.nonzero,
                    count.total, size.raw,
                    size.gzip, measure.accuracy(runner, x, y), row.get("test_accuracy"))


def export_study(plan: ExportPlan, *, latency: bool = True, repeats: int = 15, threads: int = 1,
                 runtime: str = "xnnpack", representative_size: int = 256, bundle=None) -> ExportResult:
    """Writes ``plan.round`` to ``plan.out`` and measures it against round 0 exported the same way."""
    from keras_sdd import data

    if runtime not in tflite.RUNTIMES:
        raise ConfigError(f"runtime={runtime}: choose one of {', '.join(tflite.RUNTIMES)}")
    config = plan.config
    if bundle is None:
        bundle = data.load(config.dataset, **config.data_options())
    representative = (deployable.representative_inputs(bundle, config.seed, representative_size)
                      if plan.quantize == "int8" else None)
    x, y = deployable.raw_inputs(bundle.test), bundle.test.y_clean
    rounds = [plan.round, 0]
    notes = ([f"the study computed in {config.mixed_precision}; the files compute in float32 with its float32 "
              "weights (TFLite has no bfloat16 kernels), so their accuracy may differ from the recorded one by "
              "rounding"] if config.mixed_precision != "none" else [])
    with tempfile.TemporaryDirectory(prefix="keras_sdd_export_") as tmp:
        dense_out = pathlib.Path(tmp) / ("dense" + (plan.out.suffix if plan.fmt != "saved_model" else ""))
        results, runners, warnings = [], [], list(notes)
        for k, out in zip(rounds, (plan.out, dense_out)):
            loaded = load_round(plan.study_dir, k, strip=True)
            model = deployable.deployable_model(
                deployable.in_float32(loaded.model, config, loaded.input_shape, loaded.num_classes), bundle)
            _write(plan, k, model, out, representative)
            runner = measure.runner_for(out, plan.fmt, runtime, threads)
            m = _measure(plan, k, loaded.model, out, runner, x, y)
            if plan.fmt == "tflite":
                other = "builtin" if runtime == "xnnpack" else "xnnpack"
                m.other_runtime_accuracy = measure.accuracy(measure.runner_for(out, "tflite", other, threads), x, y)
                if abs(m.other_runtime_accuracy - m.test_accuracy) > CROSS_CHECK_TOLERANCE:
                    warnings.append(
                        f"round {k}'s file gives {100 * m.test_accuracy:.2f} % test accuracy under the {runtime} "
                        f"runtime but {100 * m.other_runtime_accuracy:.2f} % under {other}: one of TFLite's kernel "
                        "sets mis-runs this file (seen with XNNPACK on sparse dynamic-range files); trust the "
                        "runtime that matches the recorded accuracy")
            results.append(m)
            runners.append(runner)
        if latency and len(x):
            for b in LATENCY_BATCHES:
                for m, t in zip(results, measure.paired_latency(runners, x, b, repeats)):
                    m.latency_s[b] = t
    return ExportResult(str(plan.study_dir), str(plan.out), plan.fmt, plan.quantize,
                        runtime if plan.fmt == "tflite" else "tensorflow", results[0], results[1], warnings)
