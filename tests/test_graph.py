"""Graph plumbing (mmstream/graph.py): topic names, endpoints, and the registry of running nodes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmstream import graph
from mmstream.errors import MmstreamError


@pytest.mark.parametrize("topic,expected", [
    ("/camera/image", "/camera/image"), ("camera/image", "/camera/image"), ("/a-b/c_d.e/9", "/a-b/c_d.e/9"),
])
def test_topic_names_are_normalized(topic: str, expected: str) -> None:
    assert graph.normalize_topic(topic) == expected


@pytest.mark.parametrize("topic", ["", "/", "//x", "/a//b", "/with space", "/ünï", "-x", "/x?"])
def test_bad_topic_names_are_refused_by_name(topic: str) -> None:
    with pytest.raises(MmstreamError, match="invalid topic name"):
        graph.normalize_topic(topic)


def test_topic_endpoint_is_an_ipc_socket_in_the_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MMSTREAM_ENDPOINTS", raising=False)
    assert graph.topic_endpoint("/camera/image", tmp_path) == f"ipc://{tmp_path}/topics/camera.image.sock"
    assert (tmp_path / "topics").is_dir()  # made, so the publisher can bind there
    assert graph.topic_endpoint("camera/image", tmp_path) == graph.topic_endpoint("/camera/image", tmp_path)
    monkeypatch.setenv("MMSTREAM_RUN_DIR", str(tmp_path / "env"))
    assert graph.default_run_dir() == tmp_path / "env"
    assert graph.topic_endpoint("/x") == f"ipc://{tmp_path}/env/topics/x.sock"


def test_long_paths_get_a_short_stable_socket_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ipc paths are limited to 108 bytes: a deep run dir gets a hashed path, the same in every process."""
    monkeypatch.delenv("MMSTREAM_ENDPOINTS", raising=False)
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    a = graph.topic_endpoint("/camera/image", deep)
    b = graph.topic_endpoint("/camera/other", deep)
    assert a.startswith(f"ipc:///tmp/mmstream-{os.getuid()}-ipc/") and len(a) - len("ipc://") <= 100
    assert a != b and a == graph.topic_endpoint("camera/image", deep)
    code = ("from pathlib import Path; from mmstream import graph; "
            f"print(graph.topic_endpoint('/camera/image', Path({str(deep)!r})))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                           env={**os.environ, "MMSTREAM_ENDPOINTS": ""}, check=True)
    assert other.stdout.strip() == a


def test_explicit_endpoints_win_and_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSTREAM_ENDPOINTS", json.dumps({"camera/image": "tcp://10.0.0.2:5555"}))
    assert graph.topic_endpoint("/camera/image", tmp_path) == "tcp://10.0.0.2:5555"  # key normalized too
    assert graph.topic_endpoint("/other", tmp_path).startswith("ipc://")
    monkeypatch.setenv("MMSTREAM_ENDPOINTS", "{not json")
    with pytest.raises(MmstreamError, match=r"MMSTREAM_ENDPOINTS or endpoints.json\) are not JSON"):
        graph.topic_endpoint("/camera/image", tmp_path)
    monkeypatch.setenv("MMSTREAM_ENDPOINTS", json.dumps({"bad topic": "tcp://h:1"}))
    with pytest.raises(MmstreamError, match="invalid topic name 'bad topic'"):
        graph.topic_endpoint("/camera/image", tmp_path)


def test_bind_endpoint_widens_tcp_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MMSTREAM_BIND_ALL", raising=False)
    assert graph.bind_endpoint("tcp://10.0.0.2:5555") == "tcp://10.0.0.2:5555"
    monkeypatch.setenv("MMSTREAM_BIND_ALL", "1")
    assert graph.bind_endpoint("tcp://10.0.0.2:5555") == "tcp://*:5555"
    assert graph.bind_endpoint("ipc:///tmp/x.sock") == "ipc:///tmp/x.sock"


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_node_registry_lists_live_and_dead_nodes_and_their_topics(tmp_path: Path) -> None:
    cam = {"name": "/camera", "pid": os.getpid(),
           "pub": [{"topic": "/camera/image", "type": "mmstream/ImageFrame"}], "sub": []}
    sync = {"name": "/sync", "pid": os.getpid(), "pub": [{"topic": "/sync/window", "type": "mmstream/Window"}],
            "sub": [{"topic": "/camera/image", "type": "mmstream/ImageFrame"},
                    {"topic": "/text/utterance", "type": "mmstream/TextUtterance"}]}
    gone = {"name": "/gone", "pid": _dead_pid(), "pub": [{"topic": "/gone/out", "type": "mmstream/Clock"}], "sub": []}
    for rec in (cam, sync, gone):
        graph.write_node_record(rec["name"], rec, tmp_path)
    (graph.nodes_dir(tmp_path) / "torn.json").write_text('{"name": "/torn", "pi')  # half written: skipped
    nodes = {n["name"]: n["alive"] for n in graph.list_nodes(tmp_path)}
    assert nodes == {"/camera": True, "/sync": True, "/gone": False}
    assert graph.list_topics(tmp_path) == {  # live nodes only
        "/camera/image": {"type": "mmstream/ImageFrame", "publishers": ["/camera"], "subscribers": ["/sync"]},
        "/sync/window": {"type": "mmstream/Window", "publishers": ["/sync"], "subscribers": []},
        "/text/utterance": {"type": "mmstream/TextUtterance", "publishers": [], "subscribers": ["/sync"]},
    }
    graph.remove_node_record("/camera", tmp_path)
    graph.remove_node_record("/never-there", tmp_path)  # no error
    assert {n["name"] for n in graph.list_nodes(tmp_path)} == {"/sync", "/gone"}
    assert not list(graph.nodes_dir(tmp_path).glob("*.tmp"))  # records are replaced atomically
