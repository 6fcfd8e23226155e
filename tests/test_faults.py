"""Faults survived (short version of `mmstream bench faults`): kill -9 and SIGSTOP/SIGCONT under respawn."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.timeout(120)


def test_kill9_and_sigstop_of_the_synchronizer_recover_and_tools_leave_no_record() -> None:
    spec = importlib.util.spec_from_file_location("bench_faults", REPO / "bench" / "bench_faults.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)  # type: ignore[union-attr]
    report = bench.run(["synchronizer"], stop_s=1.0, timeout_s=20.0)
    kill, stop, tool = report["results"]
    assert kill["respawned"] and kill["recovered_s"] is not None and kill["recovered_s"] < 5.0, report
    assert kill["lost_estimates"] is not None  # counted, not hidden
    assert stop["same_process"] and stop["after_cont_s"] is not None and stop["after_cont_s"] < 3.0, report
    assert tool["records_left"] == [], report
    assert report["launch_survived"]
