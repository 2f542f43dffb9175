"""Which round of a study to export: ``best_val`` (highest validation accuracy, the round a user can choose
without the test set), ``best_test`` (highest test accuracy, seed paper 2's Definition 1) or a round number."""
from __future__ import annotations

from typing import Any, Dict, Sequence

from keras_sdd.errors import ConfigError
from keras_sdd.study.records import is_number

#: Named choices of ``--round`` -> the rounds.csv column they maximise.
ROUND_CHOICES = {"best_val": "val_accuracy", "best_test": "test_accuracy"}


def best(rows: Sequence[Dict[str, Any]], column: str) -> int:
    """The round with the highest ``column``, the first on ties (``keras_sdd.study.loading.best_round``'s rule,
    here without TensorFlow so that a bad ``--round`` is refused at once)."""
    scored = [(r.get(column), i) for i, r in enumerate(rows) if is_number(r.get(column))]
    if not scored:
        raise ConfigError(f"no round records {column}")
    top = max(v for v, _ in scored)
    return min(i for v, i in scored if v == top)


def resolve_round(spec, rows: Sequence[Dict[str, Any]]) -> int:
    """The round index ``spec`` names among the recorded ``rows``; ConfigError naming the valid choices."""
    text = str(spec).strip()
    if text in ROUND_CHOICES:
        return best(rows, ROUND_CHOICES[text])
    try:
        k = int(text)
    except ValueError:
        raise ConfigError(f"--round={spec}: choose best_val, best_test or a round number "
                          f"0..{len(rows) - 1}") from None
    if not 0 <= k < len(rows):
        raise ConfigError(f"--round={spec}: the study records rounds 0..{len(rows) - 1}")
    return k
