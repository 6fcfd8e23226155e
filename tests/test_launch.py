"""Launch files: validation before anything starts, and real supervised processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mmstream.errors import LaunchError
from mmstream.launch import parse_launch
from mmstream.messages import ImageFrame, TextUtterance
from mmstream.node import Node
from tests.conftest import REPO, wait_for

MMSTREAM = [sys.executable, "-m", "mmstream.cli"]


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "graph.yaml"
    p.write_text(textwrap.dedent(text))
    return p


@pytest.mark.parametrize("body,match", [
    ("- node: {exec: test_pattern, name: a, parms: {}}", r"node 'a': unknown key\(s\) \['parms'\]"),
    ("- node: {name: a}", r"node 'a': missing required key 'exec'"),
    ("- node: {exec: no_such_node, name: a}", r"node 'a': executable 'no_such_node' not found"),
    ("- node: {exec: test_pattern, name: a, params: {fps: fast}}",
     r"node 'a'.*parameter 'fps': got 'fast' \(str\), expected float"),
    ("- node: {exec: test_pattern, name: a, params: {fps: -1}}", r"parameter 'fps': -1.0 is below the minimum 0.0"),
    ("- node: {exec: test_pattern, name: a, params: {fsp: 3}}", r"node 'a'.*unknown parameter\(s\) \['fsp'\]"),
    ("- node: {exec: test_pattern, name: a}\n- node: {exec: console, name: a}", r"duplicate node name\(s\) \['a'\]"),
    ("- node: {exec: test_pattern, name: a, params: {fps: $(var rate)}}", r"\$\(var rate\) names an undeclared arg"),
    ("- node: {exec: test_pattern, name: a, respawn: yes-please}", r"respawn must be bool"),
    ("- thing: {}", r"unknown kind 'thing'"),
])
def test_invalid_launch_files_name_file_node_and_key(tmp_path: Path, body: str, match: str) -> None:
    path = _write(tmp_path, "launch:\n" + textwrap.indent(body, "  ") + "\n")
    with pytest.raises(LaunchError, match=match) as e:
        parse_launch(path)
    assert str(path) in str(e.value)


def test_args_substitute_with_types_and_cli_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, """
        launch:
          - arg: {name: fps, default: "15"}
          - node: {exec: test_pattern, name: tp, params: {fps: $(var fps), width: 64}}
    """)
    assert parse_launch(path).nodes[0].params["fps"] == 15
    assert parse_launch(path, {"fps": "7.5"}).nodes[0].params["fps"] == 7.5
    with pytest.raises(LaunchError, match=r"unknown launch arg\(s\) \['fsp'\]"):
        parse_launch(path, {"fsp": "1"})


def test_validate_command_fails_before_starting_anything(tmp_path: Path, run_dir: Path) -> None:
    path = _write(tmp_path, """
        launch:
          - node: {exec: test_pattern, name: good}
          - node: {exec: console, name: bad, params: {every_n: 0}}
    """)
    out = subprocess.run([*MMSTREAM, "launch", str(path)], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert out.returncode == 2
    assert "node 'bad'" in out.stderr and "every_n" in out.stderr and "below the minimum" in out.stderr
    assert not (run_dir / "processes.json").exists()  # nothing was started


def _launch(spawn, path: Path, *args: str):  # noqa: ANN001, ANN202
    return spawn([*MMSTREAM, "launch", str(path), *args])


def test_launch_delivers_in_order_with_stamps_and_exits_with_required_node(tmp_path: Path, spawn) -> None:  # noqa: ANN001
    path = _write(tmp_path, """
        launch:
          - node:
              exec: test_pattern
              name: pattern
              params: {fps: 100.0, count: 60, audio: false, text_period_s: 0.0, wait_for_subscribers: 1}
              required: true
          - node:
              exec: console
              name: listener
              params: {topics: [/camera/image], reliable: true}
    """)
    proc = _launch(spawn, path)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    lines = [l for l in out.splitlines() if l.startswith("[listener] /camera/image")]
    seqs = [int(re.search(r"seq=(\d+)", l).group(1)) for l in lines]
    stamps = [int(re.search(r"stamp=(\d+)", l).group(1)) for l in lines]
    assert seqs == list(range(1, 61))
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert abs(stamps[0] / 1e9 - time.time()) < 120  # host clock, epoch-based
    assert "[launch]" in out and "pattern is required: shutting down" in out


def test_failed_node_makes_the_launch_exit_nonzero(tmp_path: Path, spawn) -> None:  # noqa: ANN001
    path = _write(tmp_path, """
        launch:
          - node: {exec: tests.failing_node, name: broken}
    """)
    proc = _launch(spawn, path)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "[broken]" in out and "failed on purpose" in out and "died with exit code 1" in out


def test_respawn_after_kill_9_and_subscribers_resume(tmp_path: Path, spawn, run_dir: Path) -> None:  # noqa: ANN001
    path = _write(tmp_path, """
        launch:
          - node:
              exec: test_pattern
              name: pattern
              params: {fps: 50.0, audio: false, text_period_s: 0.0}
              respawn: true
              respawn_delay_s: 0.2
              respawn_max: 2
    """)
    proc = _launch(spawn, path)
    got: list[ImageFrame] = []
    with Node("watcher", run_dir=run_dir) as watcher:
        watcher.create_subscription(ImageFrame, "/camera/image", got.append, keep_last=10)

        def spin_until(pred, what, timeout_s=20):  # noqa: ANN001, ANN202
            deadline = time.monotonic() + timeout_s
            while not pred():
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                watcher.spin_once(0.05)

        spin_until(lambda: len(got) >= 10, "first frames")
        first_pid = json.loads((run_dir / "processes.json").read_text())[0]["pid"]
        killed_ns = time.time_ns()
        os.kill(first_pid, signal.SIGKILL)
        # frames stamped after the kill can only come from the respawned process
        spin_until(lambda: sum(m.header.stamp_ns > killed_ns for m in got) >= 5, "frames from the respawned node")
        state = json.loads((run_dir / "processes.json").read_text())[0]
        assert state["respawns"] == 1 and state["pid"] != first_pid and state["exit_codes"] == [-9]
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=15)
    assert "respawning pattern (1/2)" in out


def test_ctrl_c_stops_the_whole_graph_quickly(tmp_path: Path, spawn, run_dir: Path) -> None:  # noqa: ANN001
    path = _write(tmp_path, """
        launch:
          - node: {exec: test_pattern, name: pattern}
          - node: {exec: console, name: listener, params: {topics: [/text/utterance]}}
    """)
    proc = _launch(spawn, path)
    wait_for(lambda: (run_dir / "processes.json").exists() and
             len([n for n in __import__("mmstream.graph").graph.list_nodes(run_dir) if n["alive"]]) == 2,
             20, "both nodes registered")
    pids = [p["pid"] for p in json.loads((run_dir / "processes.json").read_text())]
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=15)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, out
    assert elapsed < 2.5, f"graph took {elapsed:.2f}s to stop"
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "SIGKILL" not in out and "SIGTERM" not in out


def test_topic_hz_and_lists_against_a_running_launch(tmp_path: Path, spawn, run_dir: Path) -> None:  # noqa: ANN001
    path = _write(tmp_path, """
        launch:
          - node: {exec: test_pattern, name: pattern, params: {fps: 20.0}}
    """)
    proc = _launch(spawn, path)
    wait_for(lambda: any(n["alive"] for n in __import__("mmstream.graph").graph.list_nodes(run_dir)), 20,
             "pattern registered")
    hz = subprocess.run([*MMSTREAM, "topic", "hz", "/camera/image", "-n", "2"], capture_output=True, text=True,
                        timeout=30, cwd=REPO)
    rates = [float(x) for x in re.findall(r"average rate: ([\d.]+)", hz.stdout)]
    assert rates and all(17 < r < 23 for r in rates), hz.stdout + hz.stderr
    topics = subprocess.run([*MMSTREAM, "topic", "list"], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert re.search(r"/camera/image\s+mmstream/ImageFrame\s+pub: pattern", topics.stdout), topics.stdout
    nodes = subprocess.run([*MMSTREAM, "node", "list"], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert "/pattern" in nodes.stdout and "running" in nodes.stdout
    assert "_cli_" not in nodes.stdout, f"a CLI tool left a node record:\n{nodes.stdout}"
    echo = subprocess.run([*MMSTREAM, "topic", "echo", "/text/utterance", "-n", "1"], capture_output=True,
                          text=True, timeout=30, cwd=REPO)
    assert json.loads(echo.stdout.splitlines()[0])["text"].startswith("test utterance number")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=15)


def test_a_second_launch_in_the_same_run_dir_is_refused(tmp_path: Path, spawn, run_dir: Path) -> None:  # noqa: ANN001
    path = _write(tmp_path, """
        launch:
          - node: {exec: test_pattern, name: pattern}
    """)
    first = _launch(spawn, path)
    wait_for(lambda: (run_dir / "processes.json").exists(), 20, "first launch running")
    second = subprocess.run([*MMSTREAM, "launch", str(path)], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert second.returncode == 2 and "another 'mmstream launch' is running" in second.stderr
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=15)


def test_garbage_from_hypothesis_does_not_kill_a_running_node(spawn, run_dir: Path) -> None:  # noqa: ANN001
    import zmq
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from mmstream import graph, wire
    from mmstream.messages import NodeStats

    listener = spawn([sys.executable, "-m", "nodes.console", "--name", "listener", "--param",
                      "topics=[/chat]", "--param", "reliable=true", "--param", "stats_period_s=0.2"])
    raw = zmq.Context.instance().socket(zmq.XPUB)
    raw.setsockopt(zmq.SNDHWM, 100000)
    raw.bind(graph.topic_endpoint("/chat", run_dir))
    assert raw.poll(20000), "listener never subscribed"
    raw.recv()
    sent = 0

    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.binary(max_size=100), min_size=1, max_size=4))
    def send_garbage(frames: list[bytes]) -> None:
        nonlocal sent
        raw.send_multipart([b"/chat", *frames])
        sent += 1

    send_garbage()
    raw.send_multipart(wire.encode("/chat", TextUtterance(text="still alive")))
    stats: list[NodeStats] = []
    with Node("checker", run_dir=run_dir) as checker:
        checker.create_subscription(NodeStats, "/listener/stats", stats.append)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            checker.spin_once(0.1)
            chat = [t for s in stats[-1:] for t in s.topics if t["topic"] == "/chat"]
            if chat and chat[0]["count"] + chat[0]["rejected"] >= sent + 1:
                break
    assert listener.poll() is None, "the node died"
    assert chat[0]["count"] >= 1 and chat[0]["rejected"] >= sent - chat[0]["count"]
    listener.send_signal(signal.SIGINT)
    out, _ = listener.communicate(timeout=10)
    assert "still alive" in out
    assert "dropped bad input" in out
    raw.close(0)


def test_if_and_unless_choose_nodes_and_bad_conditions_are_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, """
        launch:
          - arg: {name: live, default: "false"}
          - node: {exec: test_pattern, name: live_source, if: $(var live)}
          - node: {exec: console, name: replay_source, unless: $(var live)}
    """)
    assert [n.name for n in parse_launch(path).nodes] == ["replay_source"]
    assert [n.name for n in parse_launch(path, {"live": "true"}).nodes] == ["live_source"]
    with pytest.raises(LaunchError, match=r"node 'live_source': if must be true or false.*'maybe'"):
        parse_launch(path, {"live": "maybe"})


def test_substitutions_nest_and_not_negates(tmp_path: Path) -> None:
    path = _write(tmp_path, """
        launch:
          - arg: {name: live, default: "false"}
          - node: {exec: console, name: c, params: {reliable: $(not $(var live)), topics: ["/$(var live)/x"]}}
    """)
    assert parse_launch(path).nodes[0].params == {"reliable": True, "topics": ["/false/x"]}
    assert parse_launch(path, {"live": "1"}).nodes[0].params["reliable"] is False


# ----------------------------------------------------------------------------- security rules


def _secure_file(tmp_path: Path, endpoint: str, security: str = "", extra: str = "") -> Path:
    text = ("launch:\n  - node: {exec: test_pattern, name: pattern}\n"
            f'endpoints: {{/camera/image: "{endpoint}"}}\n' + textwrap.dedent(security) + extra)
    p = tmp_path / "graph.yaml"
    p.write_text(text)
    return p


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    from mmstream.security import generate_keys

    import shutil

    generate_keys(tmp_path / "keys", ["host_a", "host_b"])
    (tmp_path / "keys_b").mkdir(mode=0o700)  # host_b's key directory: its own secret, host_a's public key
    for name in ("host_b.key", "host_b.key_secret", "host_a.key"):
        shutil.copy2(tmp_path / "keys" / name, tmp_path / "keys_b" / name)
    (tmp_path / "keys" / "host_b.key_secret").unlink()  # host_a's launch file: only its own secret here
    return tmp_path / "keys"


_SECURITY = """
    security:
      key_dir: keys
      key: host_a
      allow:
        host_a: {publish: ["/camera/*", "/pattern/*"], subscribe: ["/emotion/*"]}
        host_b: {subscribe: ["/camera/*"], publish: ["/emotion/*"]}
"""


def test_network_tcp_without_security_fails_validation_unless_insecure(tmp_path: Path) -> None:
    path = _secure_file(tmp_path, "tcp://10.20.0.1:5555")
    with pytest.raises(LaunchError, match=r"/camera/image is tcp://10\.20\.0\.1:5555, a network address.*"
                                          r"no security: section.*insecure: true"):
        parse_launch(path)
    assert parse_launch(_secure_file(tmp_path, "tcp://127.0.0.1:5555")).security is None  # loopback is fine
    desc = parse_launch(_secure_file(tmp_path, "tcp://10.20.0.1:5555", extra="insecure: true\n"))
    assert desc.insecure and desc.security is None
    with pytest.raises(LaunchError, match="insecure must be true or false"):
        parse_launch(_secure_file(tmp_path, "tcp://10.20.0.1:5555", extra="insecure: maybe\n"))


def test_security_section_is_validated_against_the_key_files(tmp_path: Path, keys: Path) -> None:
    import yaml

    desc = parse_launch(_secure_file(tmp_path, "tcp://10.20.0.1:5555", _SECURITY))
    assert desc.security is not None and desc.security.key == "host_a"
    assert desc.security.key_dir == keys.resolve()
    assert desc.security.keys_with("publish", "/camera/image") == ["host_a"]
    good = yaml.safe_load(_SECURITY)["security"]
    bad = [
        ({"allow": {"host_a": {"publsh": []}}}, r"security\.allow\.host_a: expected a map with 'publish'"),
        ({"key": "host_b"}, r"cannot read secret key 'host_b'"),
        ({"key": "host_c"}, r"key 'host_c' has no entry under security.allow"),
        ({"key_dir": "nowhere"}, r"security\.key_dir .*nowhere is not a directory"),
        ({"kye": "host_a"}, r"security: unknown key\(s\) \['kye'\]"),
        ({"allow": {**good["allow"], "host_z": {}}}, r"cannot read public key 'host_z'"),
    ]
    for change, match in bad:
        section = yaml.safe_dump({"security": {**good, **change}})
        with pytest.raises(LaunchError, match=match) as e:
            parse_launch(_secure_file(tmp_path, "tcp://10.20.0.1:5555", section))
        assert str(tmp_path) in str(e.value)
    both = _secure_file(tmp_path, "tcp://10.20.0.1:5555", _SECURITY, extra="insecure: true\n")
    with pytest.raises(LaunchError, match="contradict"):
        parse_launch(both)
    two_publishers = _SECURITY.replace('publish: ["/emotion/*"]', 'publish: ["/emotion/*", "/camera/image"]')
    with pytest.raises(LaunchError, match=r"exactly one key the right to publish it.*\['host_a', 'host_b'\]"):
        parse_launch(_secure_file(tmp_path, "tcp://10.20.0.1:5555", two_publishers))


def test_secured_launch_runs_over_curve_and_the_run_dir_is_private(tmp_path: Path, keys: Path,
                                                                   spawn, run_dir: Path) -> None:  # noqa: ANN001
    """A real launch on a loopback tcp endpoint with CURVE: frames flow to a subscriber with host_b's key."""
    import socket as _socket

    from mmstream import security
    from mmstream.messages import ImageFrame

    with _socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.chmod(run_dir, 0o755)
    path = _secure_file(tmp_path, f"tcp://127.0.0.1:{port}", _SECURITY)
    proc = _launch(spawn, path)
    wait_for(lambda: (run_dir / "security.json").exists(), 20, "security.json written")
    assert oct(run_dir.stat().st_mode & 0o777) == "0o700"
    assert oct((run_dir / "security.json").stat().st_mode & 0o777) == "0o600"
    cfg = security.SecurityConfig.from_json((run_dir / "security.json").read_text(), "x")
    b_cfg = security.SecurityConfig(key_dir=tmp_path / "keys_b", key="host_b", allow=cfg.allow)
    (tmp_path / "b.json").write_text(b_cfg.to_json())
    env = {security.ENV_CONFIG: str(tmp_path / "b.json"), "MMSTREAM_ENDPOINTS": json.dumps({"/camera/image": f"tcp://127.0.0.1:{port}"})}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        got: list[ImageFrame] = []
        with Node("b_side", run_dir=tmp_path / "b_run") as node:
            sub = node.create_subscription(ImageFrame, "/camera/image", got.append)
            assert sub.security.mechanism == "curve"
            deadline = time.monotonic() + 20
            while not got and time.monotonic() < deadline:
                node.spin_once(0.1)
        assert got and got[0].data.shape[2] == 3
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=15)
    assert "security: CURVE on tcp endpoints" in out and "had mode drwxr-xr-x; set to drwx------" in out, out


def test_records_of_dead_tools_are_pruned_but_dead_nodes_stay_visible(run_dir: Path) -> None:
    from mmstream import graph

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    pid = int(dead.stdout)
    graph.write_node_record("_cli_hz_1", {"name": "_cli_hz_1", "pid": pid}, run_dir)
    graph.write_node_record("camera", {"name": "camera", "pid": pid}, run_dir)
    assert [(n["name"], n["alive"]) for n in graph.list_nodes(run_dir)] == [("camera", False)]
    assert not (run_dir / "nodes" / "_cli_hz_1.json").exists()


def test_if_substitution_picks_by_condition(tmp_path: Path) -> None:
    from mmstream.errors import LaunchError
    from mmstream.launch import parse_launch

    f = tmp_path / "if.yaml"
    f.write_text("launch:\n  - arg: {name: monitor, default: \"false\"}\n  - node:\n      exec: console\n"
                 "      params: {every_n: $(if $(var monitor) 2 1)}\n")
    assert parse_launch(f, {}).nodes[0].params["every_n"] == 1
    assert parse_launch(f, {"monitor": "true"}).nodes[0].params["every_n"] == 2  # typed, like $(var)
    f.write_text(f.read_text().replace("$(if $(var monitor) 2 1)", "$(if $(var monitor) 2)"))
    with pytest.raises(LaunchError, match=r"\$\(if CONDITION THEN ELSE\)"):
        parse_launch(f, {})
