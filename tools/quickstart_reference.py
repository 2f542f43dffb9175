"""Regenerates the README's quickstart results from a run of the current code.

    python -m tools.quickstart_reference                       # runs the quickstarts into runs/, then writes
    python -m tools.quickstart_reference --sdd=DIR [--kd=DIR] [--l2=DIR]   # uses finished studies instead

Writes ``docs/quickstart_rounds.csv`` (the reference that ``tests/test_quickstart_reference.py`` compares a
fresh run with), ``docs/quickstart_sdd_curve.png`` (vanilla, and KD / ℓ2 overlaid when given) and rewrites the
README between the ``<!-- quickstart:begin -->`` / ``<!-- quickstart:end -->`` markers with the table, the
validation-chosen round and the wall time. A change of results is then a deliberate, reviewed diff.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
ROWS_SHOWN = (0, 1, 5, 10, 14, 18, 22, 26, 28)


def _run(flagfile: str, logdir: pathlib.Path, *extra: str) -> None:
    if (logdir / "summary.json").exists() and json.loads((logdir / "summary.json").read_text()).get("complete"):
        return
    args = [sys.executable, "-m", "apps.sdd", f"--flagfile={flagfile}", f"--logdir={logdir}", *extra]
    if (logdir / "config.json").exists():
        args.append("--resume")
    subprocess.run(args, cwd=REPO, check=True)


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def table(rows) -> str:
    lines = ["| round | sparsity | non-zero weights (kernels) | train acc (noisy labels) | noisy labels memorised "
             "| test acc |", "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["round"] in ROWS_SHOWN or r["round"] == rows[-1]["round"]:
            lines.append(f"| {r['round']} | {100 * r['sparsity']:.2f} % | {r['nonzero_weights']:,} | "
                         f"{_pct(r['train_noisy_accuracy'])} | {_pct(r['memorized_fraction'])} | "
                         f"{_pct(r['test_accuracy'])} |")
    return "\n".join(dict.fromkeys(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdd", type=pathlib.Path, help="finished quickstart study (default: run it)")
    parser.add_argument("--kd", type=pathlib.Path, help="finished quickstart_kd study (default: run it)")
    parser.add_argument("--l2", type=pathlib.Path, help="finished quickstart_l2 study (default: run it)")
    parser.add_argument("--no_run", action="store_true", help="only use the studies given")
    args = parser.parse_args(argv)

    import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2)
    from keras_sdd.study.board import curves_png
    from keras_sdd.study.records import read_rounds

    if args.sdd is None and not args.no_run:
        args.sdd = REPO / "runs" / "quickstart"
        _run("configs/quickstart.flags", args.sdd)
    if args.kd is None and not args.no_run:
        args.kd = REPO / "runs" / "quickstart_kd"
        _run("configs/quickstart_kd.flags", args.kd)
    if args.l2 is None and not args.no_run:
        args.l2 = REPO / "runs" / "quickstart_l2"
        _run("configs/quickstart_l2.flags", args.l2)

    rows = read_rounds(args.sdd)
    summary = json.loads((args.sdd / "summary.json").read_text())
    DOCS.mkdir(exist_ok=True)
    shutil.copyfile(args.sdd / "rounds.csv", DOCS / "quickstart_rounds.csv")
    curves = {"vanilla IMP": rows}
    if args.kd:
        curves["IMP + distillation (teacher: best pruned)"] = read_rounds(args.kd)
    if args.l2:
        for member in sorted(p for p in args.l2.iterdir() if (p / "rounds.csv").exists()):
            curves[f"IMP, ℓ2 {member.name.replace('l2=', 'λ=')}"] = read_rounds(member)
    (DOCS / "quickstart_sdd_curve.png").write_bytes(
        curves_png(curves, title="quickstart: Gaussian mixture (linear, D=100), 20 % label noise, FCN 500"))

    best = summary["best_val_round"]
    block = (f"{table(rows)}\n\nThe validation split (noisy labels, held out of training) picks round {best} "
             f"({100 * rows[best]['sparsity']:.2f} % sparse, test {_pct(rows[best]['test_accuracy'])}, "
             f"{rows[best]['nonzero_weights']:,} effective parameters — its non-zero kernel weights, seed 2's "
             f"count; {rows[best]['nonzero_params']:,} with the biases); `summary.json` records it. All rounds "
             f"took {summary['wall_time_s_all_rounds']:.0f} s of training and evaluation on the machine that made "
             "this table.")
    readme = (REPO / "README.md").read_text()
    new, n = re.subn(r"(<!-- quickstart:begin -->\n).*?(\n<!-- quickstart:end -->)",
                     lambda m: m.group(1) + block + m.group(2), readme, flags=re.S)
    if n != 1:
        print("README.md has no <!-- quickstart:begin/end --> markers; table printed below", file=sys.stderr)
        print(block)
        return 1
    (REPO / "README.md").write_text(new)
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
