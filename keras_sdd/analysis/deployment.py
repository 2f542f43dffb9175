"""The report's deployment table: each study's validation-chosen round exported (TFLite, sparse) into the
report's own folder and measured against its dense round 0 exported the same way — file size and latency ratios,
and the accuracy the file keeps. The inference-side column of seed paper 1's Table 1–2 cost rows (its §6: what
unstructured sparsity buys at deployment). Studies are only read; a study that cannot be exported gets a row
saying why."""
from __future__ import annotations

import pathlib
from typing import Any, Dict, List, Sequence

from keras_sdd.errors import ConfigError


def deployment_rows(records: Sequence, folder: pathlib.Path, *, quantize: str = "none", repeats: int = 15,
                    threads: int = 1) -> List[Dict[str, Any]]:
    """One row per study (``StudyRecord``): its ``best_val`` round exported to ``folder`` and measured."""
    from keras_sdd.export import plan, study_export

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, r in enumerate(records):
        out = folder / f"{i:03d}_{r.dir.name}.tflite"
        row: Dict[str, Any] = {"study": r.label, "dir": str(r.dir), "file": str(out), "quantize": quantize}
        try:
            result = study_export.export_study(plan.plan_export(r.dir, "best_val", "tflite", quantize, out),
                                               repeats=repeats, threads=threads)
        except ConfigError as e:
            rows.append({**row, "error": str(e)})
            continue
        e, d = result.exported, result.dense
        row.update(round=e.round, sparsity=e.sparsity, gzip_bytes=e.gzip_bytes, dense_gzip_bytes=d.gzip_bytes,
                   size_ratio=result.ratio("size_bytes"), gzip_ratio=result.ratio("gzip_bytes"),
                   latency_ratio_b1=result.ratio("latency_s", 1), latency_ratio_b128=result.ratio("latency_s", 128),
                   test_accuracy_file=e.test_accuracy, test_accuracy_recorded=e.recorded_test_accuracy,
                   dense_test_accuracy_file=d.test_accuracy, warnings=result.warnings)
        rows.append(row)
    return rows


def _num(v, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def markdown(rows: Sequence[Dict[str, Any]]) -> str:
    """The deployment table (ratios: exported / dense round 0; accuracy in %)."""
    lines = ["## Deployment: validation-chosen round as a sparse TFLite file vs the dense round", "",
             "| study | round | sparsity | gzip size | size ratio | gzip ratio | latency ratio, batch 1 | "
             "latency ratio, batch 128 | test acc. of the file | recorded | kept (pt) | dense file |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    notes = []
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['study']} | n/a | | | | | | | | | | |")
            notes.append(f"{r['dir']}: {r['error']}")
            continue
        pct = {k: None if r[k] is None else 100 * r[k] for k in ("sparsity", "test_accuracy_recorded")}
        kept = None if pct["test_accuracy_recorded"] is None else 100 * r["test_accuracy_file"] - \
            pct["test_accuracy_recorded"]
        lines.append(
            f"| {r['study']} | {r['round']} | {_num(pct['sparsity'], '.2f')} % | {r['gzip_bytes']:,} B | "
            f"{_num(r['size_ratio'], '.3f')} | {_num(r['gzip_ratio'], '.3f')} | {_num(r['latency_ratio_b1'], '.2f')} | "
            f"{_num(r['latency_ratio_b128'], '.2f')} | {100 * r['test_accuracy_file']:.2f} % | "
            f"{_num(pct['test_accuracy_recorded'], '.2f')} % | {_num(kept, '+.2f')} | "
            f"{100 * r['dense_test_accuracy_file']:.2f} % |")
        notes += [f"{r['dir']}: {w}" for w in r.get("warnings", [])]
    lines += ["", "Ratios: the exported round / the dense round 0 exported the same way (TFLite with "
              "EXPERIMENTAL_SPARSITY; latency per example, TFLite interpreter with XNNPACK where available, median "
              "of repeated runs, measured in one process). The files are in the report's deployment/ folder."]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
