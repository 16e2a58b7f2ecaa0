"""Reading what smpp34's server events leave out: each ``submit_sm``'s validity_period.

smpp34's ``SubmitSmEvent`` carries no validity_period. With
``--read-validity`` the simulator listens on its public port itself and
relays every connection to the smpp34 server on a private loopback port,
decoding each ``submit_sm`` on its way in (``smpp34.decode``) and noting its
validity_period by client reference (our message id, TLV 0x1501) before the
server has seen it. Responses and receipts flow back untouched.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import socket

import smpp34

from smsgw_simulators.smsc.codec import TAG_CLIENT_REF
from smsgw_simulators.smsc.output import warn

SUBMIT_SM = 0x00000004
_REMEMBERED = 100_000


_RELATIVE = re.compile(r"(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)\d\d\dR")


def relative_seconds(validity: str) -> float | None:
    """A relative validity_period (SMPP 3.4 section 7.1.1, ``YYMMDDhhmmsstnnR``) in
    seconds, counting a year as 365 days and a month as 30; None for any other form."""
    match = _RELATIVE.fullmatch(validity)
    if match is None:
        return None
    years, months, days, hours, minutes, seconds = map(int, match.groups())
    return float(((((years * 365 + months * 30 + days) * 24 + hours) * 60 + minutes) * 60)
                 + seconds)


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ValidityTap:
    def __init__(self, host: str, port: int, backend_port: int) -> None:
        self._host, self._port, self._backend_port = host, port, backend_port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # client reference -> validity_period as written ("" when the ESME left it empty)
        self.validity: collections.OrderedDict[str, str] = collections.OrderedDict()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            backend_reader, backend_writer = await asyncio.open_connection(
                "127.0.0.1", self._backend_port)
        except OSError as exc:
            warn(f"tap: cannot reach the SMSC: {exc!r}")
            writer.close()
            return
        pumps = [asyncio.ensure_future(self._inbound(reader, backend_writer)),
                 asyncio.ensure_future(_copy(backend_reader, writer))]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
                self._tasks.discard(task)
            for w in (writer, backend_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def _inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """ESME to SMSC, one PDU at a time (each is framed by its command_length)."""
        while True:
            try:
                header = await reader.readexactly(4)
                pdu = header + await reader.readexactly(int.from_bytes(header, "big") - 4)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if int.from_bytes(pdu[4:8], "big") == SUBMIT_SM:
                self._note(pdu)
            writer.write(pdu)
            await writer.drain()

    def _note(self, pdu: bytes) -> None:
        try:
            submit = smpp34.decode(pdu)
        except smpp34.SmppError as exc:
            warn(f"tap: undecodable submit_sm: {exc!r}")
            return
        if not isinstance(submit, smpp34.SubmitSm):
            return
        refs = [t.value for t in submit.tlvs if t.tag == TAG_CLIENT_REF]
        if not refs:
            return
        ref = refs[0].rstrip(b"\x00").decode("ascii", "replace")
        self.validity[ref] = submit.validity_period
        self.validity.move_to_end(ref)
        while len(self.validity) > _REMEMBERED:
            self.validity.popitem(last=False)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
