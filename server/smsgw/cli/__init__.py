"""The ``smsgw`` command: serve, migrate, tenant create, send, watch, bench."""

from __future__ import annotations

import os

# gRPC's fork handlers log "Other threads are currently calling into gRPC, skipping
# fork() handlers" whenever this process forks while gRPC runs (pg_ctl run as another
# user is forked, not vforked). Every child here execs at once and needs no gRPC state:
# the handlers are turned off. gRPC reads this once, when it is first imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import argparse
import asyncio
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from smsgw import logs
from smsgw.cli import bench, client, operators, server
from smsgw.cli.common import Parser
from smsgw.settings import Settings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.load()
    logs.configure(settings.log_level, settings.log_json)
    try:
        result: int = _run(args.run(args, settings))
        sys.stdout.flush()  # a reader that went away shows here, not in a flush at exit
    except BrokenPipeError:
        return _reader_gone()
    except KeyboardInterrupt:  # Ctrl-C of a client command (watch, bench): nothing to add
        return 128 + signal.SIGINT
    return result


def _reader_gone() -> int:
    """``smsgw watch | head -1``: stop quietly, as Python's documentation advises.

    stdout now points at /dev/null, so the interpreter's own flush at exit
    cannot fail a second time.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1


def _run(main: Coroutine[Any, Any, int]) -> int:
    """On uvloop where it is installed: gRPC and asyncpg both run faster on it."""
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _parser() -> argparse.ArgumentParser:
    """Every command, in the order ``smsgw --help`` lists them."""
    parser = argparse.ArgumentParser(prog="smsgw", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND", parser_class=Parser)
    tenant_actions = server.add_commands(commands)
    operators.add_commands(commands, tenant_actions)
    client.add_commands(commands)
    bench.add_commands(commands)
    return parser
