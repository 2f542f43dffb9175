"""Reading an IMP curve: sparse double descent, its four phases, the best pruned model, early stopping.

Pure functions over rounds.csv rows (dicts as ``keras_sdd.study.records.read_rounds`` returns them), so they work
on any study directory, old or new.

- **SDD** (seed 1 §3, He et al. 2022): test accuracy dips below the dense model's by at least ``margin`` and then
  rises again by at least ``margin`` above that dip, at higher sparsity.
- **Phases**: (1) accuracy ≈ dense — test within ``margin`` of round 0; (2) the interpolation threshold — train
  accuracy on the noisy labels starts to drop (first round below its maximum by ``margin``), test falls to the
  dip; (3) test rising after the dip up to its post-dip peak; (4) collapse — as seed 1 defines it, train *and*
  test accuracy collapse together: from that round on, test stays below the post-dip peak by ``margin`` and train
  accuracy (noisy labels) below its value at the peak by ``margin``; a curve that records no train accuracy falls
  back on test alone. Boundaries are the sparsities where each phase starts.
- **Best pruned model** (seed 2 Definition 1: lowest test error along the run — "test-chosen"), and the
  validation-chosen one a user without test labels picks; **effective number of parameters** (Definition 2: the
  non-zero weights of the best pruned model: ``nonzero_weights``, the kernels only, as seed 2's Table 1 counts;
  a study written before that column existed falls back on ``nonzero_params`` (all weights, biases included) or
  ``remaining_params``, and every result names the column it used).
- **Traditional early stopping**: prune while validation accuracy holds; stop at the first round whose validation
  accuracy has been more than ``tolerance`` below the best so far for ``patience`` rounds in a row, and keep the
  best-so-far round. The same rule runs live in studies (``EarlyStopping``) and over finished curves
  (``early_stop``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence

Row = Dict[str, Any]


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not (isinstance(x, float) and math.isnan(x))


def _values(rows: Sequence[Row], key: str) -> List[Optional[float]]:
    return [float(r[key]) if _num(r.get(key)) else None for r in rows]


@dataclass
class SDDResult:
    found: bool
    dense_accuracy: Optional[float]
    dip_round: Optional[int]
    dip_sparsity: Optional[float]
    dip_accuracy: Optional[float]
    peak_round: Optional[int]
    peak_sparsity: Optional[float]
    peak_accuracy: Optional[float]
    margin: float

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def detect_sdd(rows: Sequence[Row], key: str = "test_accuracy", margin: float = 0.01) -> SDDResult:
    """Does ``key`` dip below the dense value by ≥ margin, then rise ≥ margin above the dip at higher sparsity?
    The dip is the lowest point before the highest later rise (the pair maximising the rise)."""
    acc = _values(rows, key)
    pts = [(i, a) for i, a in enumerate(acc) if a is not None]
    empty = SDDResult(False, None, None, None, None, None, None, None, margin)
    if len(pts) < 3:
        return empty
    dense = pts[0][1]
    best = None  # (rise, dip index, peak index)
    for j, (i, a) in enumerate(pts[1:], start=1):
        if dense - a < margin:
            continue
        later = pts[j + 1:]
        if not later:
            continue
        k, peak = max(later, key=lambda p: (p[1], -p[0]))
        rise = peak - a
        if best is None or rise > best[0] + 1e-15:
            best = (rise, i, k)
    if best is None:
        return SDDResult(False, dense, None, None, None, None, None, None, margin)
    rise, i, k = best
    s = _values(rows, "sparsity")
    return SDDResult(rise >= margin, dense, i, s[i], acc[i], k, s[k], acc[k], margin)


def phases(rows: Sequence[Row], margin: float = 0.01) -> Dict[str, Optional[float]]:
    """Sparsities where phases 2, 3 and 4 start (None when a phase does not occur); phase 1 starts at 0."""
    test, train, s = _values(rows, "test_accuracy"), _values(rows, "train_noisy_accuracy"), _values(rows, "sparsity")
    sdd = detect_sdd(rows, margin=margin)
    out: Dict[str, Optional[float]] = {"phase1": s[0] if s else None, "phase2": None, "phase3": None, "phase4": None}
    if not test or test[0] is None:
        return out
    known_train = [t for t in train if t is not None]
    top_train = max(known_train) if known_train else None
    start2 = None
    for i, (a, t) in enumerate(zip(test, train)):
        if i == 0:
            continue
        train_drop = t is not None and top_train is not None and top_train - t >= margin
        test_drop = a is not None and test[0] - a >= margin
        if train_drop or test_drop:
            start2 = i
            break
    if start2 is None:
        return out
    out["phase2"] = s[start2]
    if sdd.found and sdd.dip_round is not None and sdd.dip_round >= start2:
        out["phase3"] = s[sdd.dip_round]
        peak, peak_train = sdd.peak_accuracy, train[sdd.peak_round]
        for i in range(sdd.peak_round + 1, len(test)):
            rest = [a for a in test[i:] if a is not None]
            if not rest or max(rest) >= peak - margin:
                continue
            if peak_train is not None:  # seed 1: train and test accuracy collapse together
                rest_train = [t for t in train[i:] if t is not None]
                if not rest_train or max(rest_train) >= peak_train - margin:
                    continue
            out["phase4"] = s[i]
            break
    return out


def best_round(rows: Sequence[Row], by: str = "val_accuracy") -> Optional[int]:
    """Index of the round with the highest ``by`` (first on ties), None when no round recorded it."""
    vals = _values(rows, by)
    known = [(v, i) for i, v in enumerate(vals) if v is not None]
    if not known:
        return None
    top = max(v for v, _ in known)
    return min(i for v, i in known if v == top)


#: Columns that can give a round's effective parameters, best first: seed 2's count (kernels only), then the
#: counts older studies recorded (all weights, biases and normalisation included).
EFFECTIVE_PARAMS_COLUMNS = ("nonzero_weights", "nonzero_params", "remaining_params")


def effective_params(row: Row) -> Dict[str, Any]:
    """Definition 2: the non-zero weights of a (best pruned) round, and which column gave them."""
    for key in EFFECTIVE_PARAMS_COLUMNS:
        if _num(row.get(key)):
            return {"value": int(row[key]), "column": key}
    return {"value": None, "column": None}


def best_pruned(rows: Sequence[Row]) -> Dict[str, Any]:
    """The validation-chosen and the test-chosen (Definition 1) best pruned rounds, with effective parameters."""
    out: Dict[str, Any] = {}
    for label, by in (("val_chosen", "val_accuracy"), ("test_chosen", "test_accuracy")):
        k = best_round(rows, by)
        if k is None:
            out[label] = None
            continue
        r = rows[k]
        out[label] = {"round": k, "sparsity": r.get("sparsity"), "test_accuracy": r.get("test_accuracy"),
                      "test_error": 1.0 - r["test_accuracy"] if _num(r.get("test_accuracy")) else None,
                      "val_accuracy": r.get("val_accuracy"), "effective_params": effective_params(r)["value"],
                      "effective_params_column": effective_params(r)["column"]}
    return out


class EarlyStopping:
    """The early-stopping rule, fed one validation accuracy per round (round 0 first).

    ``update(acc)`` returns True when the rule fires: the last ``patience`` rounds were all more than
    ``tolerance`` below the best validation accuracy so far. ``best_round`` is the round kept; ``reason`` says why.
    """

    def __init__(self, patience: int, tolerance: float = 0.0):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if tolerance < 0:
            raise ValueError(f"tolerance must be >= 0, got {tolerance}")
        self.patience, self.tolerance = int(patience), float(tolerance)
        self.best: Optional[float] = None
        self.best_round: Optional[int] = None
        self.bad = 0
        self.round = -1
        self.fired_at: Optional[int] = None
        self.reason = ""

    def update(self, accuracy: Optional[float]) -> bool:
        self.round += 1
        if self.fired_at is not None:
            return True
        if accuracy is None or (isinstance(accuracy, float) and math.isnan(accuracy)):
            return False
        if self.best is None or accuracy > self.best:
            self.best, self.best_round = accuracy, self.round
        if accuracy < self.best - self.tolerance:
            self.bad += 1
        else:
            self.bad = 0
        if self.bad >= self.patience:
            self.fired_at = self.round
            self.reason = (f"validation accuracy stayed more than {self.tolerance:g} below its best "
                           f"({100 * self.best:.2f}% at round {self.best_round}) for {self.patience} round(s) "
                           f"in a row, up to round {self.round}")
            return True
        return False


def _cum(row: Row, key: str) -> Optional[float]:
    return float(row[key]) if row and _num(row.get(key)) else None


def early_stop(rows: Sequence[Row], patience: int, tolerance: float = 0.0) -> Dict[str, Any]:
    """The rule over a finished curve: where it fires (or not), the round kept, its accuracy and sparsity, and its
    cost two ways: ``*_cum`` charged up to the round it reports (seed 1's tables charge an early-stopped run that
    way) and ``*_cum_trained`` up to the round where it stopped, the patience rounds included (what it actually
    trained). FLOPs in both conventions (sparse-aware ``train_flops``, seed 1's dense ``train_flops_dense``);
    None where the study did not record them."""
    rule = EarlyStopping(patience, tolerance)
    stop = None
    for i, acc in enumerate(_values(rows, "val_accuracy")):
        if rule.update(acc):
            stop = i
            break
    last = stop if stop is not None else len(rows) - 1
    kept = rule.best_round
    row = rows[kept] if kept is not None else {}
    spent = rows[last] if rows else {}
    cost = {}
    for key in ("train_flops_cum", "train_flops_dense_cum", "co2_g_cum"):
        cost[key] = _cum(row, key)
        cost[f"{key}_trained"] = _cum(spent, key)
    return {"fired": stop is not None, "stop_round": stop, "kept_round": kept, "reason": rule.reason,
            "test_accuracy": row.get("test_accuracy"), "sparsity": row.get("sparsity"),
            "effective_params": effective_params(row)["value"] if row else None,
            "effective_params_column": effective_params(row)["column"] if row else None,
            **cost, "patience": patience, "tolerance": tolerance}
