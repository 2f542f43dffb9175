"""What a study's record says in words, for the report's notes: a curve with no second descent, a study cut short.

- "no second descent (best pruned = dense)": the validation-chosen best round is round 0, so pruning never
  beat the dense model (a curve without the sweet-spot phase, or one cut before it).
- "study cut short at round k": fewer rounds recorded than planned and not stopped by the early-stopping rule
  (``summary.json`` says ``complete: false``, or there is no summary: the run never reached its end).
"""
from __future__ import annotations

from typing import List, Sequence

from keras_sdd.analysis import curves


def notes(records: Sequence) -> List[str]:
    """One line per study that needs one (``records``: ``replicates.StudyRecord``s), in the given order."""
    out = []
    for r in records:
        said = []
        if r.rows and len(r.rows) > 1 and curves.best_round(r.rows, "val_accuracy") == 0:
            said.append("no second descent (best pruned = dense)")
        planned = r.summary.get("rounds_planned") if r.summary else None
        if r.rows and (not r.summary or r.summary.get("complete") is False):
            last = r.rows[-1].get("round", len(r.rows) - 1)
            of = f" of {planned - 1} planned" if isinstance(planned, int) else ""
            why = "" if r.summary else "; no summary.json: the run did not reach its end"
            said.append(f"study cut short at round {last}{of}{why}")
        if said:
            out.append(f"{r.label} ({r.dir}): " + "; ".join(said))
    return out
