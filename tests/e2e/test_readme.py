"""The README, followed as a newcomer follows it: its own commands, in order, on a fresh copy.

Every ``sh``/``console``/``python`` block of README.md runs unless the marker
before it says ``<!-- readme-test: skip (why) -->``; each one to run names its
expected outcome with ``<!-- readme-test: NAME -->``, and ``EXPECTED[NAME]``
holds one step per command: how the command starts, and what it must do. A
runnable block without a marker, an unknown name, a command the steps do not
expect or an expected block the README lost: each fails the test. Named blocks
in other languages are checked, not run (``CHECKED``).

The commands run as written, with these substitutions and no others:

* The copy holds the working tree's tracked files. Its ``.venv`` is a folder of
  links to this checkout's virtualenv with a fresh install stamp, and the
  TypeScript client's ``node_modules`` is linked in: what ``make run`` would
  install (minutes, over the network) is installed already, so make goes on to
  ``generate`` and ``serve``. The server ``.venv/bin/smsgw`` runs is this
  working tree's (an editable install): the same files as the copy's.
* Ports: the README's addresses (127.0.0.1:50051, :9464, :8080) may be taken
  by someone's ``make run`` or by another test, so the test sets
  ``SMSGW_GRPC_ADDRESS``, ``SMSGW_HTTP_ADDRESS`` and ``SMSGW_REST_ADDRESS`` to
  free ports and rewrites those addresses (``127.0.0.1:8080``,
  ``localhost:8080``, ...) in the commands. It checks that the README's
  addresses are the settings' defaults, so the rewrite hides nothing.
* The environment has no ``SMSGW_*`` of the caller's (the stores are the
  embedded ones, as for a newcomer) and no ``MAKEFLAGS`` of an enclosing make.
* Each shell command runs in ``bash`` with ``set -a -o pipefail``; the variables
  it sets (``ID``, ``KEY``) carry over to the next commands, as in one terminal.
  The Python block runs with ``KEY`` bound from that terminal, its top-level
  ``await`` as in ``python -m asyncio``.

The server runs in its own process group, is stopped with SIGINT to that group
(Ctrl-C), and nothing it started may outlive it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from smsgw import pool
from smsgw.settings import REPO_ROOT, Settings
from tests.conftest import free_ports
from tests.processes import live_processes
from tests.readme_blocks import SKIP, Block, blocks

pytestmark = pytest.mark.e2e

README = REPO_ROOT / "README.md"
DEFAULTS = {"grpc_address": "127.0.0.1:50051", "http_address": "127.0.0.1:9464",
            "rest_address": "127.0.0.1:8080"}
KEY_FILE = ".smsgw-data/local-api-key"
FOUR_STATES = ["MESSAGE_STATUS_QUEUED", "MESSAGE_STATUS_SENDING", "MESSAGE_STATUS_SENT",
               "MESSAGE_STATUS_DELIVERED"]
COMMAND_SECONDS = 90
SERVE_SECONDS = 240
STOP_SECONDS = 60
# Runs a Python block as written, top-level ``await`` included, with KEY from the terminal.
PYTHON_DRIVER = """
import ast, asyncio, os, sys
code = compile(open(sys.argv[1]).read(), "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
result = eval(code, {"__name__": "__main__", "KEY": os.environ["KEY"]})
if result is not None:
    asyncio.run(result)
"""


@dataclass
class Result:
    command: str
    returncode: int
    stdout: str
    stderr: str

    def ok(self) -> Result:
        assert self.returncode == 0, f"`{self.command}` exited {self.returncode}:\n{self}"
        return self

    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def __str__(self) -> str:
        return f"stdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-3000:]}"


@dataclass
class Terminal:
    """One shell session in the copy, plus the servers started from it."""

    root: Path
    logs: Path
    env: dict[str, str]
    ports: dict[str, int]
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    count: int = 0

    def retarget(self, command: str) -> str:
        """The README's addresses, moved to this run's ports (see the module's docstring)."""
        for name, address in DEFAULTS.items():
            default_port = address.rpartition(":")[2]
            command = re.sub(rf"\b(127\.0\.0\.1|localhost):{default_port}(?!\d)",
                             rf"\g<1>:{self.ports[name]}", command)
        return command

    def run(self, command: str) -> Result:
        self.count += 1
        env_file = self.logs / f"env-{self.count}"
        script = (f"set -a -o pipefail\n{self.retarget(command)}\n"
                  f"readme_status=$?; env -0 > '{env_file}'; exit $readme_status\n")
        result = self._wait(["bash", "-c", script], command)
        if env_file.exists():
            carried = dict(item.split("=", 1) for item in
                           env_file.read_text().split("\0") if "=" in item)
            self.env.update({k: v for k, v in carried.items()
                             if k not in {"_", "SHLVL", "PWD", "OLDPWD", "readme_status"}})
        return result

    def python(self, snippet: str) -> Result:
        self.count += 1
        source = self.logs / f"block-{self.count}.py"
        source.write_text(self.retarget(snippet))
        return self._wait([".venv/bin/python", "-c", PYTHON_DRIVER, str(source)], "python block")

    def _wait(self, argv: list[str], command: str) -> Result:
        process = subprocess.Popen(argv, cwd=self.root, env=self.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = process.communicate(timeout=COMMAND_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            raise AssertionError(f"`{command}` did not end in {COMMAND_SECONDS} s:\n"
                                 f"{Result(command, -1, stdout, stderr)}") from None
        return Result(command, process.returncode, stdout, stderr)

    def serve(self, command: str) -> Result:
        """Starts a server in its own process group, as a terminal of its own."""
        self.count += 1
        out, err = self.logs / f"serve-{self.count}.out", self.logs / f"serve-{self.count}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(["bash", "-c", self.retarget(command)], cwd=self.root,
                                       env=self.env, stdout=stdout, stderr=stderr,
                                       start_new_session=True)
        self.servers.append(process)
        deadline = time.monotonic() + SERVE_SECONDS
        while not self._serving():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"`{command}` did not come up (exit {process.poll()}):\n"
                                     f"{Result(command, -1, out.read_text(), err.read_text())}")
            time.sleep(0.2)
        return Result(command, 0, out.read_text(), err.read_text())

    def _serving(self) -> bool:
        """Ready (/readyz), its key saved, and Envoy answering on the REST port."""
        if not (self.root / KEY_FILE).exists():
            return False
        return (http_status(f"http://127.0.0.1:{self.ports['http_address']}/readyz") == 200
                and http_status(f"http://127.0.0.1:{self.ports['rest_address']}/docs") == 200)

    def close(self) -> list[str]:
        """Ctrl-C to every server's group; returns what outlived it (and kills that)."""
        for process in self.servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
        for process in self.servers:
            # One that does not stop is reported below, with all else still alive.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_SECONDS)
        deadline = time.monotonic() + 10
        while (alive := self._ours()) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid, _description in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return [description for _pid, description in alive]

    def _ours(self) -> list[tuple[int, str]]:
        """Processes in a server's group, or running in or on the copy."""
        groups = {process.pid for process in self.servers}
        return [(p.pid, p.describe()) for p in live_processes()
                if p.group in groups or str(self.root) in f"{p.cmdline} {p.cwd}"]


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


# --- What each command must do ------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One README command: how it starts, as written, and what it must do."""

    starts: str
    how: str  # "run", "serve", "python" or "not run"
    check: Callable[[Terminal, Result], None] | None = None
    why_not: str = ""


def run(starts: str, check: Callable[[Terminal, Result], None]) -> Step:
    return Step(starts, "run", check)


def not_run(starts: str, why: str) -> Step:
    return Step(starts, "not run", why_not=why)


def served(terminal: Terminal, result: Result) -> None:
    assert f"serving gRPC on 127.0.0.1:{terminal.ports['grpc_address']}" in result.stdout, result
    assert KEY_FILE in result.stdout and "smsgw send" in result.stdout, result
    assert (terminal.root / KEY_FILE).read_text().strip().startswith("sk_")


def sent(terminal: Terminal, result: Result) -> None:
    result.ok()
    assert re.fullmatch(r"[0-9a-f-]{36}", terminal.env.get("ID", "")), terminal.env.get("ID")


def four_states_then_all_final(terminal: Terminal, result: Result) -> None:
    items = result.ok().lines()
    events = [item["event"] for item in items if "event" in item]
    assert [event["status"] for event in events] == FOUR_STATES, result
    # REST writes proto field names; the CLI may write JSON names (messageId) instead.
    ids = {event.get("message_id", event.get("messageId")) for event in events}
    assert ids == {terminal.env["ID"]}, result
    assert items[-1]["end"]["reason"] == "WATCH_END_REASON_ALL_FINAL", result


def key_bound(terminal: Terminal, result: Result) -> None:
    result.ok()
    assert terminal.env.get("KEY") == (terminal.root / KEY_FILE).read_text().strip()


def queued(_terminal: Terminal, result: Result) -> None:
    message = json.loads(result.ok().stdout)
    assert message["status"] == "MESSAGE_STATUS_QUEUED", result
    assert (message["to"], message["idempotency_key"]) == ("+16502530000", "order-42"), result


def unknown_field_named(_terminal: Terminal, result: Result) -> None:
    head, _, body = result.ok().stdout.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 400 "), result
    status = json.loads(body)
    assert status["code"] == 3 and "colour" in status["message"], status
    bad = next(d for d in status["details"] if d["@type"].endswith("google.rpc.BadRequest"))
    assert [v["field"] for v in bad["field_violations"]] == ["colour"], status


def printed_four_states(_terminal: Terminal, result: Result) -> None:
    assert result.ok().stdout.split() == FOUR_STATES, result


def rest_config_written(terminal: Terminal, result: Result) -> None:
    written = json.loads(result.ok().stdout.splitlines()[-1])
    config = terminal.root / written["envoy_config"]
    assert config == terminal.root / "build/rest/envoy.json", written
    assert (config.parent / "docs" / "docs.html").exists()
    assert (config.parent / "sms_descriptor.binpb").exists()
    # A sidecar runs this very config: Envoy itself must accept it.
    check = subprocess.run([written["envoy"], "--mode", "validate", "--config-path", str(config),
                            "--log-level", "error"], cwd=terminal.root, capture_output=True,
                           text=True, timeout=COMMAND_SECONDS, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


EXPECTED: dict[str, list[Step]] = {
    "serve": [
        Step("make run", "serve", served),
        not_run("make test", "the whole suite, this test included: CI runs it (.ci/run)"),
    ],
    "quickstart": [
        run("ID=$(.venv/bin/smsgw send ", sent),
        run('.venv/bin/smsgw watch "$ID"', four_states_then_all_final),
    ],
    "rest": [
        run(f"KEY=$(cat {KEY_FILE})", key_bound),
        run("curl -X POST localhost:8080/v1/messages ", queued),
        run('curl "localhost:8080/v1/messages:watch?message_ids=$ID"',
            four_states_then_all_final),
    ],
    "rest-errors": [run("curl -i -X POST localhost:8080/v1/messages ", unknown_field_named)],
    "python-client": [Step("from ghasi_sms_client import ", "python", printed_four_states)],
    "rest-config": [run("make rest-config", rest_config_written)],
}


# --- Blocks that are checked, not run -----------------------------------------------------


def providers_load(block: Block, tmp_path: Path) -> None:
    """The providers and routes example loads, and every provider's adapter accepts it."""
    config = tmp_path / "providers.toml"
    config.write_text(block.text)
    secrets = set(re.findall(r'_env = "(\w+)"', block.text))
    settings = Settings.load({"SMSGW_CONFIG": str(config), **{n: "secret" for n in secrets}})
    assert settings.providers and settings.routes
    for provider in settings.providers:
        pool.adapter(provider, settings)  # unknown or invalid options raise here


def helm_values_exist(block: Block, tmp_path: Path) -> None:
    """Every value the example sets is one of the chart's, and its settings load."""
    example = yaml.safe_load(block.text)
    chart = yaml.safe_load((REPO_ROOT / "charts/smsgw/values.yaml").read_text())
    assert_known(example, chart, "")
    names = {f"SMSGW_{name.upper()}" for name in Settings.__dataclass_fields__}
    assert set(example.get("config", {})) <= names, example["config"]
    secrets = {item["env"]: "secret" for item in example.get("providerSecrets", [])}
    settings = Settings.from_mapping({"providers": example.get("providers", []),
                                      "routes": example.get("routes", [])}, secrets)
    for provider in settings.providers:
        pool.adapter(provider, settings)
    del tmp_path


def assert_known(example: Any, chart: Any, path: str) -> None:
    if not isinstance(example, dict) or path == ".config":
        return
    assert isinstance(chart, dict), f"values{path} is not a mapping in the chart"
    for key, value in example.items():
        assert key in chart, f"values{path}.{key} is not in charts/smsgw/values.yaml"
        assert_known(value, chart[key], f"{path}.{key}")


CHECKED: dict[str, Callable[[Block, Path], None]] = {
    "providers-toml": providers_load,
    "helm-values": helm_values_exist,
}


# --- The plan and the run -----------------------------------------------------------------


def plan(found: list[Block]) -> list[tuple[Block, list[Step] | None]]:
    """The README's blocks to run (with their steps) or check; fails on any mismatch."""
    problems = [problem for block in found for problem in block_problems(block)]
    markers = [block.marker for block in found if block.marker not in {None, SKIP}]
    named = set(markers)
    problems += [f"README.md marks two blocks '{name}'" for name in sorted(named)
                 if markers.count(name) > 1]
    problems += [f"README.md has no block marked '{name}' any more"
                 for name in sorted((set(EXPECTED) | set(CHECKED)) - named)]
    assert not problems, "\n".join(problems)
    return [(block, EXPECTED[block.marker] if block.runnable else None)
            for block in found if block.marker not in {None, SKIP}]


def block_problems(block: Block) -> list[str]:
    if block.marker == SKIP:
        return [] if block.note else [f"{block.where}: say why it is skipped: "
                                      "<!-- readme-test: skip (why) -->"]
    if block.marker is None:
        return [f"{block.where}: a runnable block without a marker; add "
                "<!-- readme-test: NAME --> (and EXPECTED[NAME] in this test) "
                "or <!-- readme-test: skip (why) -->"] if block.runnable else []
    if block.runnable and block.marker in EXPECTED:
        return mismatches(block, EXPECTED[block.marker])
    if not block.runnable and block.marker in CHECKED:
        return []
    return [f"{block.where}: no expected outcome for '{block.marker}' in this test"]


def mismatches(block: Block, steps: list[Step]) -> list[str]:
    commands = block.commands()
    if len(commands) != len(steps):
        return [f"{block.where} '{block.marker}': {len(commands)} commands, but the test "
                f"expects {len(steps)}: {commands}"]
    return [f"{block.where} '{block.marker}': `{command}` is not what the test expects there "
            f"(`{step.starts}...`)" for command, step in zip(commands, steps, strict=True)
            if not command.startswith(step.starts)]


def fresh_copy(target: Path) -> Path:
    """The tracked files as they are in the working tree, plus what ``make run`` installs."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True,
                             check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        source = REPO_ROOT / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    installed = Path(sys.prefix)  # the virtualenv running this test: `make test`'s .venv
    assert (installed / "bin" / "smsgw").exists(), f"no smsgw installed in {installed}"
    venv = target / ".venv"
    venv.mkdir()
    for entry in installed.iterdir():
        if entry.name != ".installed":
            (venv / entry.name).symlink_to(entry)
    (venv / ".installed").touch()  # newer than every file make compares it with
    modules = REPO_ROOT / "clients/typescript/node_modules"
    if modules.is_dir():
        (target / "clients/typescript/node_modules").symlink_to(modules)
    return target


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    root, logs = fresh_copy(tmp_path / "repo"), tmp_path / "logs"
    logs.mkdir()
    ports = dict(zip(DEFAULTS, free_ports(len(DEFAULTS)), strict=True))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SMSGW_") and k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}}
    env.update({f"SMSGW_{name.upper()}": f"127.0.0.1:{port}" for name, port in ports.items()})
    started = Terminal(root, logs, env, ports)
    yield started
    assert started.close() == [], "processes outlived the server's Ctrl-C"


def test_every_runnable_block_has_an_expected_outcome():
    assert plan(blocks(README.read_text()))


def test_the_readmes_addresses_are_the_defaults():
    text, settings = README.read_text(), Settings()
    for name, address in DEFAULTS.items():
        assert getattr(settings, name) == address
        assert address in text, f"the README no longer names {address}: update DEFAULTS"


def test_the_readme_runs_as_written(terminal: Terminal, tmp_path: Path):
    for block, steps in plan(blocks(README.read_text())):
        if steps is None:
            CHECKED[str(block.marker)](block, tmp_path)
            continue
        for command, step in zip(block.commands(), steps, strict=True):
            if step.how == "not run":
                continue
            result = {"serve": terminal.serve, "python": terminal.python,
                      "run": terminal.run}[step.how](command)
            assert step.check is not None
            try:
                step.check(terminal, result)
            except AssertionError as error:
                raise AssertionError(f"{block.where} `{command}`: {error}") from error
