"""rounds.csv / summary.json: atomic appends, exact round trip, no duplicate rounds, the row defined once."""
import pytest

from keras_sdd import ConfigError
from keras_sdd.study import records
from keras_sdd.study.records import NAMES as ROUND_FIELDS, RoundRecords, atomic_write_json, read_rounds


def row(k, acc):
    r = {c.name: {"int": 0, "float": 0.0, "str": "", "json": []}[c.kind] for c in records.COLUMNS}
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


def test_header_scalars_and_time_fields_derive_from_the_column_table():
    assert ROUND_FIELDS[0] == "round" and len(ROUND_FIELDS) == len(set(ROUND_FIELDS))
    assert set(records.SCALARS) <= set(ROUND_FIELDS) and "test_accuracy" in records.SCALARS
    assert records.TIME_FIELDS == ("wall_time_s", "energy_kwh", "energy_kwh_cum", "co2_g", "co2_g_cum", "co2_method")


def test_an_older_study_keeps_its_own_header(tmp_path):
    """A study written with fewer columns is resumed with one consistent header; read_rounds fills the gaps."""
    old = ROUND_FIELDS[:ROUND_FIELDS.index("per_layer_sparsity")]   # a study of the first release
    kinds = {c.name: c.kind for c in records.COLUMNS}
    (tmp_path / "rounds.csv").write_text(",".join(old) + "\n" + ",".join(
        {"int": "0", "json": "[]", "float": "0.5", "str": ""}[kinds[k]] for k in old) + "\n")
    RoundRecords(tmp_path).append(row(1, 0.25))
    lines = (tmp_path / "rounds.csv").read_text().splitlines()
    assert lines[0] == ",".join(old) and all(len(line.split(",")) == len(old) for line in lines[1:])
    rows = read_rounds(tmp_path)
    assert [r["round"] for r in rows] == [0, 1] and rows[1]["test_accuracy"] == 0.25
    assert rows[1]["per_layer_sparsity"] is None and rows[0]["ece_clean"] is None and rows[1]["co2_g"] is None


@pytest.mark.parametrize("damage, message", [
    (lambda text: text[:-12], "truncated"),
    (lambda text: text.replace("0.7234", "x.7!"), "cannot be parsed"),
    (lambda text: "", "no valid header"),
])
def test_check_finds_damage(tmp_path, damage, message):
    rec = RoundRecords(tmp_path)
    rec.append(row(0, 0.7234))
    rec.append(row(1, 0.5))
    assert [r["round"] for r in rec.check()] == [0, 1]
    path = tmp_path / "rounds.csv"
    path.write_text(damage(path.read_text()))
    with pytest.raises(ConfigError, match=message):
        rec.check()
