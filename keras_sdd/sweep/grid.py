"""A sweep's grid: ``'width=10,20,50;seed=0,1,2;gmm_task=linear,xor'`` — axes separated by ``;``, values by ``,``.

Axes are study settings (flags of ``apps.sdd``); a list-valued setting joins its items with ``+``
(``classes=0+1,0+1+2+3+4`` is two points, ``--classes=0,1`` and ``--classes=0,1,2,3,4``). The points are the Cartesian product in the order written (the
last axis varies fastest); each point's study directory is named by its settings, e.g.
``gmm_task=linear,width=10,seed=0`` (characters other than letters, digits and ``._+-=,`` become ``_``).
"""
from __future__ import annotations

import itertools
import re
from typing import Dict, List, Sequence

from keras_sdd.errors import ConfigError

Grid = Dict[str, List[str]]

_UNSAFE = re.compile(r"[^A-Za-z0-9._+\-=,]")


def parse_grid(text: str) -> Grid:
    """Axis -> values, in order; ConfigError for a malformed grid, an empty or repeated axis or value."""
    if not text or not text.strip():
        raise ConfigError("--grid is empty; give axes like --grid='width=10,20;seed=0,1'")
    grid: Grid = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ConfigError(f"--grid: {part!r} is not of the form name=value1,value2,...")
        name, values = (s.strip() for s in part.split("=", 1))
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ConfigError(f"--grid: {name!r} is not a setting name")
        if name in grid:
            raise ConfigError(f"--grid: axis {name} appears twice")
        vals = [v.strip() for v in values.split(",")]
        if not values.strip() or any(not v for v in vals):
            raise ConfigError(f"--grid: axis {name} has an empty value list or an empty value")
        if len(set(vals)) != len(vals):
            raise ConfigError(f"--grid: axis {name} repeats a value")
        grid[name] = vals
    if not grid:
        raise ConfigError("--grid names no axis")
    return grid


def expand(grid: Grid) -> List[Dict[str, str]]:
    """Every point of the grid: the Cartesian product of the axes, in order."""
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def flag_value(value: str) -> str:
    """The flag text of a grid value (``+`` joins the items of a list-valued setting)."""
    return value.replace("+", ",")


def point_name(point: Dict[str, str]) -> str:
    """The study folder name of a point: its settings in grid order, filesystem-safe."""
    return _UNSAFE.sub("_", ",".join(f"{k}={v}" for k, v in point.items()))


#: Longest folder name most file systems take (bytes).
MAX_NAME = 255


def check_names(points: Sequence[Dict[str, str]]) -> None:
    """Every point's folder name must be distinct and short enough for the file system."""
    names = [point_name(p) for p in points]
    for n in names:
        if len(n.encode()) > MAX_NAME:
            raise ConfigError(f"--grid: the folder name of point {n[:60]}... is longer than {MAX_NAME} bytes; use "
                              "shorter values (e.g. fewer or shorter axes)")
    if len(set(names)) != len(names):
        raise ConfigError("--grid: two points map to the same folder name; use values that differ in letters or "
                          "digits")
