"""``smsgw bench``: the command; the measurements live in ``smsgw_bench``, imported when it runs."""

from __future__ import annotations

import argparse
import contextlib
import json

from smsgw.cli.common import Commands, client_options, client_target
from smsgw.settings import Settings


def add_commands(commands: Commands) -> None:
    bench = commands.add_parser("bench", help="measure a running gateway; prints JSON",
                                more_arguments=_bench_arguments)
    client_options(bench)
    bench.set_defaults(run=_bench)


def _bench_arguments(parser: argparse.ArgumentParser) -> None:
    from smsgw_bench import add_arguments  # noqa: PLC0415 - only for smsgw bench

    add_arguments(parser)


async def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from smsgw_bench import run  # noqa: PLC0415 - not part of the production package

    # The faults drills, relay-drain and the lanes and schedule modes start gateways
    # of their own: no key needed.
    own = args.mode in {"faults", "relay-drain", "lanes", "schedule"}
    address, key = ("", "") if own else client_target(args, settings)
    with contextlib.suppress(KeyboardInterrupt):
        print(json.dumps(await run(args, address, key), indent=2))
    return 0
