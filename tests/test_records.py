"""rounds.csv / summary.json: atomic appends, exact round trip, no duplicate rounds."""
import pytest

from keras_sdd.study.records import ROUND_FIELDS, RoundRecords, atomic_write_json, read_rounds


def row(k, acc):
    r = {f: 0.0 for f in ROUND_FIELDS}
    r.update(round=k, epochs=3, remaining_params=100 - k, pruned_params=k, prunable_params=90, total_params=100,
             collapsed_layers=["dense"] if k == 2 else [], per_layer_sparsity={"dense/kernel": 0.1 * k},
             test_accuracy=acc)
    return r


def test_append_and_read_back(tmp_path):
    rec = RoundRecords(tmp_path)
    rec.append(row(0, 0.7234))
    rec.append(row(1, 1 / 3))
    rec.append(row(2, 0.5))
    rows = read_rounds(tmp_path)
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert rows[1]["test_accuracy"] == 1 / 3            # floats survive exactly (repr)
    assert rows[2]["collapsed_layers"] == ["dense"]
    assert rows[1]["per_layer_sparsity"] == {"dense/kernel": 0.1}
    assert not list(tmp_path.glob(".*tmp"))              # no temporary file left behind


def test_duplicate_round_refused(tmp_path):
    rec = RoundRecords(tmp_path)
    rec.append(row(0, 0.5))
    with pytest.raises(ValueError, match="already recorded"):
        rec.append(row(0, 0.6))
    assert len(rec.rows()) == 1


def test_missing_field_refused(tmp_path):
    r = row(0, 0.5)
    del r["test_accuracy"]
    with pytest.raises(ValueError, match="lacks"):
        RoundRecords(tmp_path).append(r)
    assert not (tmp_path / "rounds.csv").exists()


def test_atomic_json(tmp_path):
    atomic_write_json(tmp_path / "s.json", {"a": 1})
    assert (tmp_path / "s.json").read_text().strip() == '{\n  "a": 1\n}'
