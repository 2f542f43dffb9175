"""The report's numbers: seed 1 Table 1/2 rows (cost, accuracy ± std, sparsity of full pruning vs early stopping
per kind of study) and seed 2 Table 1 rows (full vs best pruned parameters and test error), as data and as
markdown. Missing numbers are None and print as "n/a"."""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

from keras_sdd.analysis import curves
from keras_sdd.analysis.replicates import Group, mean_std


def _last(rows, key):
    return rows[-1].get(key) if rows else None


def cost_rows(groups: Sequence[Group], patience: int, tolerance: float) -> List[Dict[str, Any]]:
    """Per group: 'full pruning' (every round's cost, the validation-chosen round's accuracy and sparsity) and
    'early stop' (cost up to where the rule stops, the round it keeps)."""
    out = []
    for g in groups:
        for variant in ("full pruning", "early stop"):
            flops, co2, acc, sparsity, params, stops = [], [], [], [], [], []
            for m in g.members:
                if variant == "full pruning":
                    kept = curves.best_round(m.rows, "val_accuracy")
                    flops.append(_last(m.rows, "train_flops_cum"))
                    co2.append(_last(m.rows, "co2_g_cum"))
                else:
                    es = curves.early_stop(m.rows, patience, tolerance)
                    kept = es["kept_round"]
                    flops.append(es["train_flops_cum"])
                    co2.append(es["co2_g_cum"])
                    stops.append(es["stop_round"])
                row = m.rows[kept] if kept is not None else {}
                acc.append(row.get("test_accuracy"))
                sparsity.append(row.get("sparsity"))
                params.append(curves.effective_params(row)["value"] if row else None)
            pflops = mean_std([f / 1e15 if isinstance(f, (int, float)) else None for f in flops])
            out.append({"study": g.label, "variant": variant, "replicates": len(g.members), "seeds": g.seeds,
                        "train_pflops": pflops, "co2_g": mean_std(co2), "test_accuracy": mean_std(acc),
                        "sparsity": mean_std(sparsity), "effective_params": mean_std(params),
                        **({"stop_rounds": stops} if stops else {})})
    return out


def lottery_numbers(members: Sequence) -> Dict[str, Any]:
    """Seed 2 Table 1 numbers over replicate studies (mean ± std): full model parameters and test error, and the
    best pruned model's (test-chosen, Definition 1, and validation-chosen) effective parameters and test error."""
    cols: Dict[str, List[Any]] = {k: [] for k in ("full_params", "full_test_error", "best_params_test_chosen",
                                                  "best_test_error_test_chosen", "best_params_val_chosen",
                                                  "best_test_error_val_chosen")}
    for m in members:
        first = m.rows[0] if m.rows else {}
        cols["full_params"].append(curves.effective_params(first)["value"])
        cols["full_test_error"].append(1 - first["test_accuracy"] if isinstance(first.get("test_accuracy"), float)
                                       else None)
        best = curves.best_pruned(m.rows)
        for sel in ("test_chosen", "val_chosen"):
            b = best.get(sel) or {}
            cols[f"best_params_{sel}"].append(b.get("effective_params"))
            cols[f"best_test_error_{sel}"].append(b.get("test_error"))
    return {k: mean_std(v) for k, v in cols.items()}


def lottery_rows(groups: Sequence[Group]) -> List[Dict[str, Any]]:
    """``lottery_numbers`` of each replicate group."""
    return [{"study": g.label, "replicates": len(g.members), **lottery_numbers(g.members)} for g in groups]


def fmt(ms: Dict[str, Any], scale: float = 1.0, digits: int = 2, pct: bool = False, integer: bool = False,
        general: bool = False) -> str:
    """'mean ± std' (std only with replicates), 'n/a' when unknown; ``general``: 3 significant digits."""
    if ms.get("mean") is None:
        return "n/a"
    mean, std = ms["mean"] * scale, (ms["std"] or 0.0) * scale
    unit = " %" if pct else ""
    if general:
        return f"{mean:.3g}" + (f" ± {std:.2g}" if ms["n"] > 1 else "")
    if integer:
        return f"{mean:,.0f}" + (f" ± {std:,.0f}" if ms["n"] > 1 else "")
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if ms["n"] > 1 else "") + unit


def markdown(cost: Sequence[Dict[str, Any]], lottery: Sequence[Dict[str, Any]], notes: Sequence[str]) -> str:
    lines = ["# Sparse double descent report", "",
             "## Cost and accuracy (seed paper 1, Tables 1–2 form)", "",
             "| study | variant | training PFLOPs | CO2 (g) | test accuracy | sparsity | effective params | n |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in cost:
        lines.append(f"| {r['study']} | {r['variant']} | {fmt(r['train_pflops'], general=True)} | "
                     f"{fmt(r['co2_g'], general=True)} | {fmt(r['test_accuracy'], 100, pct=True)} | "
                     f"{fmt(r['sparsity'], 100, pct=True)} | {fmt(r['effective_params'], integer=True)} | "
                     f"{r['replicates']} |")
    lines += ["", "## Full vs best pruned model (seed paper 2, Table 1 form)", "",
              "| study | full params | full test error | best pruned params (test-chosen) | its test error | "
              "best pruned params (val-chosen) | its test error |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in lottery:
        lines.append(f"| {r['study']} | {fmt(r['full_params'], integer=True)} | {fmt(r['full_test_error'], digits=3)}"
                     f" | {fmt(r['best_params_test_chosen'], integer=True)} | "
                     f"{fmt(r['best_test_error_test_chosen'], digits=3)} | {fmt(r['best_params_val_chosen'], integer=True)}"
                     f" | {fmt(r['best_test_error_val_chosen'], digits=3)} |")
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
