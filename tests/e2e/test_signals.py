"""``smsgw serve`` on the embedded stores, as a new user runs it: quiet, and Ctrl-C stops it all.

The embedded Postgres and Redis detach from the terminal (a session of their
own), so a Ctrl-C to the process group never reaches them: only the gateway's
own stop does. These tests look for what would outlive it: any process whose
command line or working directory is in the data folder, or that names one of
the server's ports.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_ports
from tests.processes import live_processes

pytestmark = pytest.mark.e2e

READY_LINE = "watch it, by its id"
RUNS = 10


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    """One data folder for the module: initdb runs once, later starts take seconds.

    Outside pytest's own temporary root, which pytest makes private (0700) at
    every session's start: the embedded Postgres runs as another user and
    must reach its folder even while another pytest session starts.
    """
    folder = Path(tempfile.mkdtemp(prefix="smsgw-signals-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Serve:
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    ports: list[int]
    stdout: Path
    stderr: Path

    def stop(self, sig: signal.Signals = signal.SIGINT, whole_group: bool = True) -> int:
        if whole_group:
            with contextlib.suppress(ProcessLookupError):  # when it has exited already
                os.killpg(self.process.pid, sig)  # what a Ctrl-C in the terminal does
        else:
            self.process.send_signal(sig)  # what systemd or Kubernetes do
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise


def embedded_env(data_dir: Path, ports: list[int]) -> dict[str, str]:
    """No store URLs (embedded Postgres and Redis), REST on: Envoy is a child too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    grpc_port, http_port, rest_port = ports
    env.update(SMSGW_DATA_DIR=str(data_dir), SMSGW_GRPC_ADDRESS=f"127.0.0.1:{grpc_port}",
               SMSGW_HTTP_ADDRESS=f"127.0.0.1:{http_port}",
               SMSGW_REST_ADDRESS=f"127.0.0.1:{rest_port}", SMSGW_REST_ENABLED="true",
               SMSGW_SIMULATOR_LATENCY_MS="5", SMSGW_SIMULATOR_RECEIPT_DELAY_MS="50")
    return env


def start_serve(data_dir: Path, logs: Path, name: str) -> Serve:
    ports = free_ports(3)
    env = embedded_env(data_dir, ports)
    stdout, stderr = logs / f"{name}.out", logs / f"{name}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "smsgw", "serve"], env=env,
                                   stdout=out, stderr=err, cwd=logs,
                                   start_new_session=True)  # its own process group
    serve = Serve(process, env, ports, stdout, stderr)
    deadline = time.monotonic() + 120
    while READY_LINE not in stdout.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            serve.stop(signal.SIGKILL)
            raise AssertionError(f"serve did not start:\n{stderr.read_text()[-3000:]}")
        time.sleep(0.05)
    return serve


def leftovers(serve: Serve, data_dir: Path) -> list[str]:
    """Processes of this server still alive: in its group, in its data folder, on its ports."""
    return [p.describe() for p in live_processes()
            if p.group == serve.process.pid or str(data_dir) in f"{p.cmdline} {p.cwd}"
            or any(f":{port}" in p.cmdline for port in serve.ports)]


def wait_no_leftovers(serve: Serve, data_dir: Path) -> list[str]:
    deadline = time.monotonic() + 5
    while (found := leftovers(serve, data_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def noise(stderr: str) -> list[str]:
    """Everything on stderr but the gateway's own log records below WARNING."""
    unexpected = []
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            unexpected.append(line)
            continue
        if not (isinstance(record, dict) and record.get("level") in {"debug", "info"}
                and str(record.get("logger", "")).startswith("smsgw")):
            unexpected.append(line)
    return unexpected


def smsgw(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smsgw", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_ctrl_c_stops_every_child_every_time(data_dir, tmp_path):
    for run in range(RUNS):
        serve = start_serve(data_dir, tmp_path, f"run-{run}")
        assert serve.stop(signal.SIGINT) == 0, serve.stderr.read_text()[-3000:]
        assert wait_no_leftovers(serve, data_dir) == [], f"run {run}"
        assert noise(serve.stderr.read_text()) == [], f"run {run}"


def test_sigterm_to_the_server_alone_stops_every_child(data_dir, tmp_path):
    serve = start_serve(data_dir, tmp_path, "sigterm")
    assert serve.stop(signal.SIGTERM, whole_group=False) == 0
    assert wait_no_leftovers(serve, data_dir) == []
    assert noise(serve.stderr.read_text()) == []


def test_the_run_after_a_crash_stops_what_the_crashed_one_left(data_dir, tmp_path):
    """A SIGKILL leaves the detached stores running; the next run adopts and stops them."""
    crashed = start_serve(data_dir, tmp_path, "crashed")
    crashed.stop(signal.SIGKILL)
    assert leftovers(crashed, data_dir)  # Postgres and Redis outlived it, as they do
    serve = start_serve(data_dir, tmp_path, "after-crash")
    assert serve.stop(signal.SIGINT) == 0
    assert wait_no_leftovers(serve, data_dir) == []
    assert noise(serve.stderr.read_text()) == []


def test_the_first_ten_minutes_are_quiet(data_dir, tmp_path):
    """serve, tenant create, send, watch | head -1, dlq list, a closed pipe, Ctrl-C on watch."""
    serve = start_serve(data_dir, tmp_path, "tour")
    env = serve.env
    try:
        created = smsgw(env, "tenant", "create", "ops", "--scope", "admin")
        assert created.returncode == 0
        assert created.stderr == "Keep this key: it is shown only once.\n"
        admin_key = json.loads(created.stdout)["api_key"]

        sent = smsgw(env, "send", "--to", "+16502530000", "--body", "Hello from Ghasi")
        assert (sent.returncode, sent.stderr) == (0, "")
        message = json.loads(sent.stdout)
        assert message["status"] == "MESSAGE_STATUS_QUEUED"
        assert "idempotency_key" in message and "idempotencyKey" not in message

        assert_watch_into_head_is_quiet(env)

        dead = smsgw(env, "dlq", "list", "--api-key", admin_key)
        assert (dead.returncode, dead.stdout, dead.stderr) == (0, "", "no dead letters\n")

        assert_closed_pipe_is_quiet(env, "send", "--to", "+16502530000", "--body", "pipe")
        assert_ctrl_c_on_watch_is_quiet(env)
    finally:
        code = serve.stop(signal.SIGINT)
    assert code == 0
    assert noise(serve.stderr.read_text()) == []
    assert wait_no_leftovers(serve, data_dir) == []


def assert_watch_into_head_is_quiet(env: dict[str, str]) -> None:
    """``smsgw watch | head -1``: the watch ends at its next line, without a traceback."""
    watch = subprocess.Popen([sys.executable, "-m", "smsgw", "watch"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert watch.stdout is not None and watch.stderr is not None
    try:
        time.sleep(2)  # a tenant-wide watch starts now: let it start before the event
        assert smsgw(env, "send", "--to", "+16502530000", "--body", "watched").returncode == 0
        first = json.loads(watch.stdout.readline())
        assert first["event"]["status"].startswith("MESSAGE_STATUS_")  # a name, not a number
        watch.stdout.close()  # head has read its line and gone
        smsgw(env, "send", "--to", "+16502530000", "--body", "after head left")
        assert watch.wait(timeout=60) == 1
        assert watch.stderr.read() == b""
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
        watch.stderr.close()


def assert_closed_pipe_is_quiet(env: dict[str, str], *args: str) -> None:
    """The reader is gone before the command writes (``smsgw send ... | head -c0``)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "smsgw", *args], env=env, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (1, "")


def assert_ctrl_c_on_watch_is_quiet(env: dict[str, str]) -> None:
    watch = subprocess.Popen([sys.executable, "-m", "smsgw", "watch"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
    assert watch.stderr is not None
    time.sleep(2)
    os.killpg(watch.pid, signal.SIGINT)
    try:
        assert watch.wait(timeout=60) == 128 + signal.SIGINT
        assert watch.stderr.read() == b""
    finally:
        watch.stderr.close()
