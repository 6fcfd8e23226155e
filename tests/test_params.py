"""Declared node parameters (mmstream/params.py): coercion, ranges, unknown names, parameter files.
How launch files report these errors (naming file and node) is tested in test_launch.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmstream.errors import ParameterError
from mmstream.params import COMMON_PARAMS, Param, load_params_file, resolve


def test_value_type_comes_from_the_default_unless_given() -> None:
    assert Param("fps", 15.0).value_type is float
    assert Param("n", 3).value_type is int
    assert Param("x", 3, type=float).value_type is float
    assert Param("path", None).value_type is str  # no default: a string


@pytest.mark.parametrize("param,given,expected", [
    (Param("n", 3), "7", 7),                      # command-line text is read as YAML would
    (Param("fps", 1.0), "2.5", 2.5),
    (Param("fps", 1.0), 2, 2.0),                  # an int where a float is declared
    (Param("n", 3), 4.0, 4),                      # a whole float where an int is declared
    (Param("flag", False), "true", True),
    (Param("flag", False), "off", False),
    (Param("topics", ["/a"]), "[/b, /c]", ["/b", "/c"]),
    (Param("opts", {"a": 1}), "{b: 2}", {"b": 2}),
    (Param("name", "x"), 5, "5"),                 # a number where a string is declared
    (Param("name", "x"), "007", "007"),           # strings are never parsed
    (Param("path", None), None, None),            # an optional parameter left unset
])
def test_values_are_coerced_to_the_declared_type(param: Param, given: Any, expected: Any) -> None:
    value = param.coerce("node", given)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("param,given,match", [
    (Param("n", 3), 2.5, r"node 'cam' parameter 'n': got 2\.5 \(float\), expected int"),
    (Param("n", 3), True, r"got True \(bool\), expected int"),   # a bool is not an int here
    (Param("fps", 1.0), "fast", r"got 'fast' \(str\), expected float"),
    (Param("name", "x"), True, r"got True \(bool\), expected str"),
    (Param("topics", ["/a"]), "[unclosed", r"got '\[unclosed' \(str\), expected list"),
    (Param("fps", 1.0, min=0.5), 0.25, r"parameter 'fps': 0\.25 is below the minimum 0\.5"),
    (Param("n", 3, max=10), 11, r"11 is above the maximum 10"),
    (Param("level", "info", choices=("info", "debug")), "loud", r"'loud' is not one of \['info', 'debug'\]"),
])
def test_bad_values_name_node_parameter_and_expectation(param: Param, given: Any, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        param.coerce("cam", given)


@given(st.integers(min_value=-10**6, max_value=10**6))
def test_integers_within_range_survive_the_command_line(n: int) -> None:
    p = Param("n", 0, min=-10**6, max=10**6)
    assert p.coerce("node", str(n)) == n == p.coerce("node", n) == p.coerce("node", float(n))


def test_resolve_fills_defaults_adds_common_params_and_refuses_unknown_names() -> None:
    declared = [Param("fps", 15.0, min=0.0), Param("width", 640)]
    values = resolve("cam", declared, {"fps": "30", "log_level": "debug"})
    assert values["fps"] == 30.0 and values["width"] == 640 and values["log_level"] == "debug"
    assert {p.name for p in COMMON_PARAMS} <= set(values)
    assert set(values) == {p.name for p in (*COMMON_PARAMS, *declared)}
    with pytest.raises(ParameterError, match=r"node 'cam': unknown parameter\(s\) \['fsp'\]; declared: \[.*'fps'"):
        resolve("cam", declared, {"fsp": 30})
    with pytest.raises(ParameterError, match=r"node 'cam' parameter 'use_sim_time'"):
        resolve("cam", declared, {"use_sim_time": "sometimes"})


@pytest.mark.parametrize("text,expected", [
    ("fps: 30\nwidth: 320\n", {"fps": 30, "width": 320}),                               # a flat map
    ("cam:\n  ros__parameters: {fps: 30}\nother:\n  ros__parameters: {fps: 1}\n", {"fps": 30}),  # ROS 2 style
    ("/**:\n  ros__parameters: {fps: 5}\n", {"fps": 5}),                                 # for every node
    ("/**:\n  ros__parameters: {fps: 5}\ncam:\n  ros__parameters: {fps: 7}\n", {"fps": 7}),  # its own wins
    ("cam:\n  ros__parameters:\n", {}),
    ("", {}),
])
def test_parameter_files(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    assert load_params_file(str(path), "cam") == expected


def test_unreadable_parameter_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"node 'cam': cannot read parameter file .*missing\.yaml"):
        load_params_file(str(tmp_path / "missing.yaml"), "cam")
    bad = tmp_path / "bad.yaml"
    bad.write_text("fps: [1, 2\n")
    with pytest.raises(ParameterError, match=r"parameter file .*bad\.yaml is not valid YAML"):
        load_params_file(str(bad), "cam")
    listed = tmp_path / "list.yaml"
    listed.write_text("- fps\n- 30\n")
    with pytest.raises(ParameterError, match=r"list\.yaml must hold a map, got list"):
        load_params_file(str(listed), "cam")
