"""What the commands share: how a client command finds the gateway and its key, and output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from smsgw.settings import Settings

LOCAL_TENANT = "local"

# The object ``add_subparsers`` returns; argparse does not name its type publicly.
Commands = Any


class Parser(argparse.ArgumentParser):
    """A command parser that can add options from a module imported only when the command runs.

    ``smsgw bench`` takes its options from ``smsgw_bench``, which is not part
    of the production package: it is imported when ``bench`` is parsed, not
    for every command.
    """

    def __init__(self, *args: Any,
                 more_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._more_arguments = more_arguments

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None,
                         ) -> tuple[argparse.Namespace, list[str]]:
        if self._more_arguments is not None:
            add, self._more_arguments = self._more_arguments, None
            add(self)
        return super().parse_known_args(args, namespace)


def client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=None, help="default: the configured grpc_address")
    parser.add_argument("--api-key", default=None,
                        help="default: $SMSGW_API_KEY, else the local tenant's key file")


def client_target(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    address = args.address or settings.grpc_address.replace("0.0.0.0", "127.0.0.1")  # noqa: S104
    key = args.api_key or os.environ.get("SMSGW_API_KEY") or _read_local_key(settings)
    if not key:
        raise SystemExit("no API key: pass --api-key, set SMSGW_API_KEY, "
                         "or run 'smsgw tenant create NAME'")
    return address, key


def local_key_file(settings: Settings) -> Path:
    return settings.data_dir / "local-api-key"


def _read_local_key(settings: Settings) -> str | None:
    path = local_key_file(settings)
    return path.read_text().strip() if path.exists() else None


def to_json(message: Message) -> str:
    """As REST answers: field names as in the proto, enum names, zero values included."""
    return json.dumps(MessageToDict(message, preserving_proto_field_name=True,
                                    always_print_fields_with_no_presence=True))


def print_lines(items: Sequence[Message]) -> int:
    """One JSON object per line; returns how many."""
    for item in items:
        print(to_json(item))
    return len(items)


def note(text: str) -> None:
    """Remarks for the person at the terminal go to stderr; stdout stays machine-readable."""
    print(text, file=sys.stderr)


def failed(exc: grpc.aio.AioRpcError) -> int:
    note(f"{exc.code().name}: {exc.details()}")
    return 1


class AuthorizedStub:
    """Adds the API key to every call of a generated stub."""

    def __init__(self, stub: Any, key: str) -> None:
        self._stub, self._metadata = stub, (("authorization", f"Bearer {key}"),)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)
        return lambda request: method(request, metadata=self._metadata, timeout=30)
