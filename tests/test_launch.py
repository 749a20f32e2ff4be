"""Starting `watchkeeper serve` and `watchkeeper demo`: a taken port or a data directory another
process owns gives one line and exit code 3, and nothing is written or wiped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from watchkeeper.server.launch import LOCK_NAME, CannotStart, DataDirLock, listen


def _command() -> list[str]:
    beside = Path(sys.executable).with_name("watchkeeper")
    return [str(beside)] if beside.is_file() else [sys.executable, "-m", "watchkeeper.cli"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    env["WATCHKEEPER_LOG_LEVEL"] = "warning"
    return env


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_command(), *map(str, args)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        check=False,
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on which another process (this one) listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield int(s.getsockname()[1])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_taken_port_is_one_line_and_exit_code_3(
    command: str, taken_port: int, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    res = run(command, "--port", str(taken_port), "--data-dir", data)
    assert res.returncode == 3, res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines == [
        f"watchkeeper: error: port {taken_port} on 127.0.0.1 is already in use by another "
        "process; stop it or choose another port with --port"
    ], res.stderr
    assert not data.exists(), "nothing is written before the port is known to be free"


def test_a_second_serve_on_the_same_data_directory_refuses(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = _free_port()
    first = subprocess.Popen(
        [*_command(), "serve", "--port", str(port), "--data-dir", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                # ready: migrated and running (/healthz answers from the first moment)
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("the first service did not start")
        state = (data / "state.db").stat().st_mtime_ns

        second = run("serve", "--port", str(_free_port()), "--data-dir", data)
        assert second.returncode == 3, second.stderr
        (line,) = second.stderr.strip().splitlines()
        assert line.startswith(f"watchkeeper: error: data directory {data} is in use by another")
        assert f"pid {first.pid}, watchkeeper serve on 127.0.0.1:{port}" in line
        assert (data / "state.db").stat().st_mtime_ns == state
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200

        # killed outright, the first leaves no stale claim: the kernel drops the lock
        first.kill()
        first.wait(timeout=30)
        with DataDirLock(data):
            pass
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=30)


def test_demo_never_wipes_a_directory_another_process_holds(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    data.mkdir()
    (data / ".watchkeeper-demo").write_text("made by watchkeeper demo\n")
    (data / "state.db").write_bytes(b"the running service's state")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from watchkeeper.server.launch import DataDirLock; "
            "DataDirLock(Path(sys.argv[1]), owner='holder').acquire(); "
            "print('held', flush=True); time.sleep(60)",
            str(data),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        res = run("demo", "--port", str(_free_port()), "--data-dir", data, "--exit")
        assert res.returncode == 3, res.stderr
        assert "is in use by another watchkeeper process" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert (data / "state.db").read_bytes() == b"the running service's state"
    finally:
        holder.kill()
        holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()


def test_lock_and_listen_in_process(tmp_path: Path) -> None:
    with DataDirLock(tmp_path, owner="me") as lock:
        assert (tmp_path / LOCK_NAME).read_text() == f"pid {os.getpid()}, me\n"
        with pytest.raises(CannotStart, match=r"in use by another watchkeeper process \(pid"):
            DataDirLock(tmp_path).acquire()
    DataDirLock(tmp_path).acquire().release()  # released: free again
    assert lock.lock_file.exists()
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    try:
        with pytest.raises(CannotStart, match=f"port {port} on 127.0.0.1 is already in use"):
            listen("127.0.0.1", port)
    finally:
        sock.close()


def _group(pgid: int) -> list[str]:
    """The command lines of the processes in a process group (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
                out.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ValueError, IndexError):
            continue
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_ctrl_c_stops_serve_and_its_processor_without_a_traceback(tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*_command(), "serve", "--port", str(port), "--data-dir", str(tmp_path / "d")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**_env(), "WATCHKEEPER_LOG_LEVEL": "info"},
            start_new_session=True,  # its own process group, as a terminal gives it
        )
    try:
        deadline = time.monotonic() + 90
        # the processor child (and multiprocessing's helper) must be up and past start-up
        while time.monotonic() < deadline:
            group = _group(proc.pid)
            if any("spawn_main" in c for c in group) and any(
                "resource_tracker" in c for c in group
            ):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"no processor process appeared:\n{log.read_text()}")
        time.sleep(0.5)  # the child may still be importing: it must not be killed then either
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert proc.wait(timeout=60) == 0, log.read_text()
        deadline = time.monotonic() + 30
        while _group(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _group(proc.pid) == [], "a process of the service outlived Ctrl-C"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    text = log.read_text()
    assert "Shutting down" in text
    for bad in ("Traceback", "KeyboardInterrupt", "leak"):
        assert bad not in text, text


def _startup_lines(*args: str | Path, about: tuple[str, ...] = ("auth:", "warning:")) -> list[str]:
    """Start `watchkeeper serve` with ``args``, wait until it is ready, stop it, and return the
    lines starting with ``about`` it printed on standard error."""
    port = _free_port()
    proc = subprocess.Popen(
        [*_command(), "serve", "--port", str(port), *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:  # ready: migrated and built (the auth lines are printed by then)
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    return [line for line in err.splitlines() if line.startswith(about)]


def test_the_startup_says_whether_tokens_are_required(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _startup_lines("--data-dir", data) == [
        "auth: off: no token is asked for (--require-tokens turns it on)"
    ]
    locked = _startup_lines("--data-dir", data, "--require-tokens")
    assert locked[0] == "auth: bearer tokens required"
    assert locked[1].startswith("warning: no token exists yet, so every API request gets 401")
    made = run("token", "create", "svc", "--scopes", "ingest", "--data-dir", data)
    assert made.returncode == 0, made.stderr
    assert _startup_lines("--data-dir", data, "--require-tokens") == [
        "auth: bearer tokens required (1 token)"
    ]


def test_the_startup_names_the_host_names_it_answers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _startup_lines("--data-dir", data, about=("hosts:",)) == [
        "hosts: localhost, 127.0.0.1, ::1 (other Host names get 400; allowed_hosts)"
    ]


def test_tokens_off_on_a_network_address_is_a_warning() -> None:
    from watchkeeper.cli.service import _auth_lines
    from watchkeeper.settings import Settings

    lines = _auth_lines(Settings(host="0.0.0.0", require_tokens=False), store=None)
    assert lines[1] == (
        "warning: tokens are off on 0.0.0.0, which is not a loopback address: "
        "anyone who can reach it can read and change everything"
    )
    assert Settings(host="127.0.0.2").is_loopback and Settings(host="::1").is_loopback
    assert not Settings(host="10.1.2.3").is_loopback
    assert Settings(host="10.1.2.3").tokens_required
