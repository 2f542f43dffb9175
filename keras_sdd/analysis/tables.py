"""The report's numbers: seed 1 Table 1/2 rows (cost, accuracy ± std, sparsity of full pruning vs early stopping
per kind of study) and seed 2 Table 1 rows (full vs best pruned parameters and test error), as data and as
markdown. Missing numbers are None and print as "n/a"."""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

from keras_sdd.analysis import curves
from keras_sdd.analysis.replicates import Group, mean_std


def _last(rows, key):
    return rows[-1].get(key) if rows else None


#: How each cost column is counted; the captions of tables.md and README quote these.
FLOPS_CONVENTIONS = {
    "train_pflops_dense": "seed 1's convention: every round charged the dense model's training FLOPs "
                          "(3 × forward × examples × epochs), no discount for sparsity, no teacher",
    "train_pflops": "each round at the densities it trained at, a distillation teacher at its own sparse-aware "
                    "forward (once when its logits are cached)",
}
EFFECTIVE_PARAMS = ("non-zero kernel weights of the reported round (Dense/Conv/attention kernels, output layer "
                    "included; biases and normalisation excluded): seed 2's Definition 2")


def _pflops(values) -> Dict[str, Any]:
    return mean_std([f / 1e15 if isinstance(f, (int, float)) else None for f in values])


def cost_rows(groups: Sequence[Group], patience: int, tolerance: float) -> List[Dict[str, Any]]:
    """Per group: 'full pruning' (every round's cost, the validation-chosen round's accuracy and sparsity) and
    'early stop' (charged up to the round it keeps, as seed 1's tables do, plus what it trained up to the round
    where the rule fired). FLOPs in both conventions (``FLOPS_CONVENTIONS``)."""
    out = []
    for g in groups:
        for variant in ("full pruning", "early stop"):
            cost: Dict[str, List[Any]] = {k: [] for k in ("train_flops_cum", "train_flops_dense_cum", "co2_g_cum",
                                                          "train_flops_cum_trained",
                                                          "train_flops_dense_cum_trained")}
            acc, sparsity, params, columns, stops = [], [], [], set(), []
            for m in g.members:
                if variant == "full pruning":
                    kept = curves.best_round(m.rows, "val_accuracy")
                    for key in ("train_flops_cum", "train_flops_dense_cum", "co2_g_cum"):
                        cost[key].append(_last(m.rows, key))
                else:
                    es = curves.early_stop(m.rows, patience, tolerance)
                    kept = es["kept_round"]
                    for key in cost:
                        cost[key].append(es[key])
                    stops.append(es["stop_round"])
                row = m.rows[kept] if kept is not None else {}
                acc.append(row.get("test_accuracy"))
                sparsity.append(row.get("sparsity"))
                effective = curves.effective_params(row) if row else {"value": None, "column": None}
                params.append(effective["value"])
                if effective["column"]:
                    columns.add(effective["column"])
            out.append({"study": g.label, "variant": variant, "replicates": len(g.members), "seeds": g.seeds,
                        "train_pflops": _pflops(cost["train_flops_cum"]),
                        "train_pflops_dense": _pflops(cost["train_flops_dense_cum"]),
                        "co2_g": mean_std(cost["co2_g_cum"]), "test_accuracy": mean_std(acc),
                        "sparsity": mean_std(sparsity), "effective_params": mean_std(params),
                        "effective_params_columns": sorted(columns),
                        **({"stop_rounds": stops,
                            "trained_pflops": _pflops(cost["train_flops_cum_trained"]),
                            "trained_pflops_dense": _pflops(cost["train_flops_dense_cum_trained"])}
                           if variant == "early stop" else {})})
    return out


def lottery_numbers(members: Sequence) -> Dict[str, Any]:
    """Seed 2 Table 1 numbers over replicate studies (mean ± std): full model parameters and test error, and the
    best pruned model's (test-chosen, Definition 1, and validation-chosen) effective parameters and test error."""
    cols: Dict[str, List[Any]] = {k: [] for k in ("full_params", "full_test_error", "best_params_test_chosen",
                                                  "best_test_error_test_chosen", "best_params_val_chosen",
                                                  "best_test_error_val_chosen")}
    columns = set()
    for m in members:
        first = m.rows[0] if m.rows else {}
        cols["full_params"].append(curves.effective_params(first)["value"])
        columns.add(curves.effective_params(first)["column"])
        cols["full_test_error"].append(1 - first["test_accuracy"] if isinstance(first.get("test_accuracy"), float)
                                       else None)
        best = curves.best_pruned(m.rows)
        for sel in ("test_chosen", "val_chosen"):
            b = best.get(sel) or {}
            cols[f"best_params_{sel}"].append(b.get("effective_params"))
            cols[f"best_test_error_{sel}"].append(b.get("test_error"))
    return {**{k: mean_std(v) for k, v in cols.items()}, "params_columns": sorted(c for c in columns if c)}


def lottery_rows(groups: Sequence[Group]) -> List[Dict[str, Any]]:
    """``lottery_numbers`` of each replicate group."""
    return [{"study": g.label, "replicates": len(g.members), **lottery_numbers(g.members)} for g in groups]


def fmt(ms: Dict[str, Any], scale: float = 1.0, digits: int = 2, pct: bool = False, integer: bool = False,
        general: bool = False) -> str:
    """'mean ± std' (std only with replicates), 'n/a' when unknown; ``general``: 3 significant digits."""
    if ms.get("mean") is None:
        return "n/a"
    mean, std = ms["mean"] * scale, (ms["std"] or 0.0) * scale
    if abs(std) <= 1e-9 * abs(mean):   # replicates equal up to float rounding
        std = 0.0
    unit = " %" if pct else ""
    if general:
        return f"{mean:.3g}" + (f" ± {std:.2g}" if ms["n"] > 1 else "")
    if integer:
        return f"{mean:,.0f}" + (f" ± {std:,.0f}" if ms["n"] > 1 else "")
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if ms["n"] > 1 else "") + unit


def _params_cell(r: Dict[str, Any], key: str = "effective_params", columns_key: str = "effective_params_columns") -> str:
    """Effective parameters, marked † where an older study gave only its all-weights count."""
    cell = fmt(r[key], integer=True)
    return cell + (" †" if set(r.get(columns_key) or ()) - {"nonzero_weights"} else "")


def markdown(cost: Sequence[Dict[str, Any]], lottery: Sequence[Dict[str, Any]], notes: Sequence[str]) -> str:
    lines = ["# Sparse double descent report", "",
             "## Cost and accuracy (seed paper 1, Tables 1–2 form)", "",
             f"Training PFLOPs two ways: *dense (seed 1)* — {FLOPS_CONVENTIONS['train_pflops_dense']}; "
             f"*sparse-aware* — {FLOPS_CONVENTIONS['train_pflops']}. An early-stopped run is charged up to the "
             "round it reports, as seed 1's tables do; *trained to stop* is what it actually trained, up to the "
             "round where the rule fired (its patience rounds included). Test accuracy and sparsity: the "
             "validation-chosen round (full pruning) or the round early stopping keeps. Effective params: "
             f"{EFFECTIVE_PARAMS}; † marks an older study's all-weights count (biases included).", "",
             "| study | variant | PFLOPs dense (seed 1) | PFLOPs sparse-aware | trained to stop: dense / sparse-aware "
             "| CO2 (g) | test accuracy | sparsity | effective params | n |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in cost:
        trained = (f"{fmt(r['trained_pflops_dense'], general=True)} / {fmt(r['trained_pflops'], general=True)}"
                   if "trained_pflops" in r else "—")
        lines.append(f"| {r['study']} | {r['variant']} | {fmt(r['train_pflops_dense'], general=True)} | "
                     f"{fmt(r['train_pflops'], general=True)} | {trained} | "
                     f"{fmt(r['co2_g'], general=True)} | {fmt(r['test_accuracy'], 100, pct=True)} | "
                     f"{fmt(r['sparsity'], 100, pct=True)} | {_params_cell(r)} | {r['replicates']} |")
    lines += ["", "## Full vs best pruned model (seed paper 2, Table 1 form)", "",
              f"Params: {EFFECTIVE_PARAMS} (the full model's: all its kernel weights); † marks an older study's "
              "all-weights count. Best pruned: lowest test error along the run (test-chosen, seed 2 Definition 1) "
              "or highest validation accuracy (val-chosen, what a user without test labels picks).", "",
              "| study | full params | full test error | best pruned params (test-chosen) | its test error | "
              "best pruned params (val-chosen) | its test error |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in lottery:
        mark = " †" if set(r.get("params_columns") or ()) - {"nonzero_weights"} else ""
        lines.append(f"| {r['study']} | {fmt(r['full_params'], integer=True)}{mark} | "
                     f"{fmt(r['full_test_error'], digits=3)} | {fmt(r['best_params_test_chosen'], integer=True)}{mark}"
                     f" | {fmt(r['best_test_error_test_chosen'], digits=3)} | "
                     f"{fmt(r['best_params_val_chosen'], integer=True)}{mark} | "
                     f"{fmt(r['best_test_error_val_chosen'], digits=3)} |")
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
