"""Sweep grids: parsing, expansion in order, folder names, refusals."""
import pytest

from keras_sdd import ConfigError
from keras_sdd.sweep.grid import check_names, expand, flag_value, parse_grid, point_name


def test_parse_and_expand_in_order():
    grid = parse_grid("width=10,20,50; seed=0,1 ;gmm_task=linear,xor")
    assert list(grid) == ["width", "seed", "gmm_task"]
    points = expand(grid)
    assert len(points) == 12
    assert points[0] == {"width": "10", "seed": "0", "gmm_task": "linear"}
    assert points[1] == {"width": "10", "seed": "0", "gmm_task": "xor"}          # the last axis varies fastest
    assert points[-1] == {"width": "50", "seed": "1", "gmm_task": "xor"}
    assert point_name(points[0]) == "width=10,seed=0,gmm_task=linear"
    assert len({point_name(p) for p in points}) == 12


def test_list_values_and_safe_names():
    assert flag_value("0+1+2") == "0,1,2"
    assert point_name({"classes": "0+1", "data_path": "/a b/c.npz"}) == "classes=0+1,data_path=_a_b_c.npz"
    with pytest.raises(ConfigError, match="same folder name"):
        check_names([{"data_path": "a/b"}, {"data_path": "a b"}])


@pytest.mark.parametrize("text, message", [
    ("", "--grid is empty"), ("width", "not of the form"), ("width=", "empty value list"),
    ("width=1,,2", "empty value"), ("width=1;width=2", "appears twice"), ("width=1,1", "repeats a value"),
    ("Width=1", "not a setting name"), (" ; ", "names no axis"),
])
def test_malformed_grids_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_grid(text)
