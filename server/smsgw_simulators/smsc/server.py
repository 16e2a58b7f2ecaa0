"""An SMSC simulator: the SMPP 3.4 peer our SMPP adapter is tested and benchmarked against.

Run it as its own process::

    python -m smsgw.simulators.smsc --port 2775 --journal /tmp/smsc.jsonl --stats /tmp/stats.json

It accepts binds, answers every ``submit_sm`` (or injects faults: throttling,
queue-full, permanent rejects, a token-bucket rate limit, latency), reassembles
concatenated messages (UDH 8/16-bit reference, SAR TLVs, ``message_payload``),
journals each completed message as one JSON line, and sends delivery receipts
back as ``deliver_sm`` (delayed, late, lost, undelivered, or even before the
``submit_sm_resp``, as real SMSCs do).

It deliberately imports nothing from ``smsgw``: an independent implementation
of the text codecs and concatenation rules is what makes it a real cross-check
of the gateway's own. Dependencies: the standard library, ``smpp34`` and,
when importable, ``uvloop``.

The pure pieces (``decode_gsm7``, ``decode_text``, ``parse_udh``, ``split_part``,
``Reassembler``, ``receipt_text``, ``format_message_id``, ``TokenBucket``) are
importable for unit tests.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import heapq
import json
import os
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _json_string
from pathlib import Path
from typing import Any, Final, TextIO

import smpp34
from smpp34 import Esme, SubmitSmEvent, Tlv, Unbound

# ── SMPP constants (numeric, so nothing depends on the module's dynamic exports) ──

ESME_RINVBNDSTS: Final = 0x04
ESME_RINVDSTADR: Final = 0x0B
ESME_RMSGQFUL: Final = 0x14
ESME_RINVESMCLASS: Final = 0x43
ESME_RTHROTTLED: Final = 0x58
ESME_RINVOPTPARAMVAL: Final = 0xC4

TAG_RECEIPTED_MESSAGE_ID: Final = 0x001E
TAG_SAR_MSG_REF_NUM: Final = 0x020C
TAG_SAR_TOTAL_SEGMENTS: Final = 0x020E
TAG_SAR_SEGMENT_SEQNUM: Final = 0x020F
TAG_MESSAGE_PAYLOAD: Final = 0x0424
TAG_MESSAGE_STATE: Final = 0x0427
TAG_CLIENT_REF: Final = 0x1501  # vendor-specific: the gateway's message id, ASCII

STATE_DELIVERED: Final = 2
STATE_UNDELIVERABLE: Final = 5

ESM_UDHI: Final = 0x40
ESM_DELIVERY_RECEIPT: Final = 0x04

# ── GSM 03.38 default alphabet (3GPP TS 23.038), unpacked: one septet per byte ──

GSM7_ESCAPE: Final = 0x1B
# Index = septet value. Position 0x1B is the escape to the extension table.
GSM7_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(GSM7_BASIC) == 128
GSM7_EXTENSION: Final[dict[int, str]] = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
# Byte -> character for the escape-free fast path; bytes above 0x7F are not septets.
_GSM7_TRANSLATE: Final[dict[int, str]] = {
    **{i: GSM7_BASIC[i] for i in range(128)},
    **{i: "\ufffd" for i in range(128, 256)},
}


def decode_gsm7(data: bytes) -> str:
    """Decode unpacked GSM 7-bit default alphabet, with the 0x1B extension table.

    An escape followed by a code with no extension character shows the basic
    character (TS 23.038's fallback); a trailing lone escape is dropped.
    Octets above 0x7F are not septets and decode to U+FFFD.
    """
    if GSM7_ESCAPE not in data:
        return data.decode("latin-1").translate(_GSM7_TRANSLATE)
    out: list[str] = []
    escaped = False
    for byte in data:
        if escaped:
            escaped = False
            char = GSM7_EXTENSION.get(byte)
            if char is None:
                char = " " if byte == GSM7_ESCAPE else _GSM7_TRANSLATE[byte]
            out.append(char)
        elif byte == GSM7_ESCAPE:
            escaped = True
        else:
            out.append(_GSM7_TRANSLATE[byte])
    return "".join(out)


def decode_text(data: bytes, data_coding: int) -> str:
    """The text of a message body for an SMPP ``data_coding``.

    0 GSM 03.38 (unpacked), 1 IA5/ASCII, 3 Latin-1, 8 UCS-2/UTF-16BE (surrogate
    pairs allowed); anything else decodes as Latin-1 so the journal still shows
    something. Undecodable input is replaced, never raised.
    """
    if data_coding == 0:
        return decode_gsm7(data)
    if data_coding == 8:
        return data.decode("utf-16-be", errors="replace")
    if data_coding == 1:
        return data.decode("ascii", errors="replace")
    return data.decode("latin-1")


# ── Concatenation ─────────────────────────────────────────────────────────────


class SegmentError(ValueError):
    """A submit whose concatenation information is malformed."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True, slots=True)
class Part:
    """One submit_sm's share of a message."""

    mode: str  # "udh8" | "udh16" | "sar" | "payload" | "single"
    body: bytes  # the text bytes, UDH stripped
    reference: int = 0
    total: int = 1
    seq: int = 1


def parse_udh(data: bytes) -> tuple[int, int, int, str | None, bytes]:
    """Split a UDH off ``data``: (reference, total, seq, mode, body).

    Concatenation IEs: 0x00 (8-bit reference) and 0x08 (16-bit reference);
    other IEs are skipped. ``mode`` is None when the UDH carries no
    concatenation IE. Raises SegmentError for a truncated header.
    """
    if not data:
        raise SegmentError("bad_udh", ESME_RINVESMCLASS)
    end = 1 + data[0]
    if end > len(data):
        raise SegmentError("bad_udh", ESME_RINVESMCLASS)
    reference, total, seq, mode = 0, 1, 1, None
    i = 1
    while i < end:
        if i + 2 > end:
            raise SegmentError("bad_udh", ESME_RINVESMCLASS)
        iei, length = data[i], data[i + 1]
        value = data[i + 2 : i + 2 + length]
        if len(value) != length or i + 2 + length > end:
            raise SegmentError("bad_udh", ESME_RINVESMCLASS)
        if iei == 0x00 and length == 3:
            reference, total, seq, mode = value[0], value[1], value[2], "udh8"
        elif iei == 0x08 and length == 4:
            reference, total, seq = (value[0] << 8) | value[1], value[2], value[3]
            mode = "udh16"
        i += 2 + length
    return reference, total, seq, mode, data[end:]


def split_part(esm_class: int, short_message: bytes, tlvs: dict[int, bytes]) -> Part:
    """Work out which message a submit belongs to and where in it.

    UDH (esm_class & 0x40) wins over SAR TLVs, which win over a bare
    ``message_payload``; the body comes from ``message_payload`` when present,
    else from ``short_message``.
    """
    payload = tlvs.get(TAG_MESSAGE_PAYLOAD)
    data = payload if payload is not None else short_message
    if esm_class & ESM_UDHI:
        reference, total, seq, mode, body = parse_udh(data)
        if mode is None:
            return Part("payload" if payload is not None else "single", body)
        return _checked(Part(mode, body, reference, total, seq))
    ref_tlv = tlvs.get(TAG_SAR_MSG_REF_NUM)
    if ref_tlv is not None:
        total_tlv = tlvs.get(TAG_SAR_TOTAL_SEGMENTS)
        seq_tlv = tlvs.get(TAG_SAR_SEGMENT_SEQNUM)
        if total_tlv is None or seq_tlv is None or len(ref_tlv) != 2:
            raise SegmentError("bad_sar", ESME_RINVOPTPARAMVAL)
        return _checked(Part(
            "sar", data, int.from_bytes(ref_tlv, "big"),
            int.from_bytes(total_tlv, "big"), int.from_bytes(seq_tlv, "big")))
    return Part("payload" if payload is not None else "single", data)


def _checked(part: Part) -> Part:
    if not 1 <= part.seq <= part.total:
        raise SegmentError("bad_segment", ESME_RINVOPTPARAMVAL)
    return part


@dataclass(slots=True)
class Completed:
    """A fully received message."""

    client_ref: str | None
    to: str
    from_: str
    text: str
    data_coding: int
    parts: int
    message_ids: list[str]
    mode: str
    duplicate_parts: int = 0

    def journal_line(self, received_at: str) -> str:
        """One JSON object and a newline (built by hand: this runs per message)."""
        q = _json_string
        ref = "null" if self.client_ref is None else q(self.client_ref)
        ids = ", ".join(map(q, self.message_ids))
        return (f'{{"client_ref": {ref}, "to": {q(self.to)}, "from": {q(self.from_)}, '
                f'"text": {q(self.text)}, "data_coding": {self.data_coding}, '
                f'"parts": {self.parts}, "message_ids": [{ids}], "mode": {q(self.mode)}, '
                f'"duplicate_parts": {self.duplicate_parts}, '
                f'"received_at": {q(received_at)}}}\n')


@dataclass(slots=True)
class _Assembly:
    mode: str
    data_coding: int
    client_ref: str | None
    bodies: dict[int, bytes] = field(default_factory=dict)
    ids: dict[int, str] = field(default_factory=dict)
    duplicates: int = 0


AssemblyKey = tuple[str, str, str, int, int]


class Reassembler:
    """Collects parts keyed by (system_id, source, destination, reference, total).

    A part whose seq was already received is a duplicate part (the first copy
    is kept); so is a part of a message completed moments ago that carries the
    same client reference (a retransmission). A part with a *different* client
    reference than the assembly in progress means the reference was reused:
    the old, incomplete assembly is abandoned.
    """

    def __init__(self, remember_completed: int = 4096) -> None:
        self.pending: dict[AssemblyKey, _Assembly] = {}
        self._recent: collections.OrderedDict[AssemblyKey, str] = collections.OrderedDict()
        self._remember = remember_completed
        self.duplicate_parts = 0
        self.abandoned = 0

    def add(
        self, system_id: str, source: str, destination: str, part: Part, data_coding: int,
        message_id: str, client_ref: str | None,
    ) -> Completed | None:
        if part.total <= 1:
            return Completed(client_ref, destination, source,
                             decode_text(part.body, data_coding), data_coding, 1,
                             [message_id], part.mode)
        key = (system_id, source, destination, part.reference, part.total)
        assembly = self.pending.get(key)
        if assembly is None:
            if client_ref is not None and self._recent.get(key) == client_ref:
                self.duplicate_parts += 1
                return None
            assembly = self.pending[key] = _Assembly(part.mode, data_coding, client_ref)
        elif client_ref is not None and assembly.client_ref not in (None, client_ref):
            self.abandoned += 1
            assembly = self.pending[key] = _Assembly(part.mode, data_coding, client_ref)
        if part.seq in assembly.bodies:
            assembly.duplicates += 1
            self.duplicate_parts += 1
            return None
        assembly.bodies[part.seq] = part.body
        assembly.ids[part.seq] = message_id
        if assembly.client_ref is None:
            assembly.client_ref = client_ref
        if len(assembly.bodies) < part.total:
            return None
        del self.pending[key]
        if assembly.client_ref is not None:
            self._recent[key] = assembly.client_ref
            self._recent.move_to_end(key)
            if len(self._recent) > self._remember:
                self._recent.popitem(last=False)
        order = range(1, part.total + 1)
        body = b"".join(assembly.bodies[i] for i in order)
        return Completed(assembly.client_ref, destination, source,
                         decode_text(body, assembly.data_coding), assembly.data_coding,
                         part.total, [assembly.ids[i] for i in order], assembly.mode,
                         assembly.duplicates)


# ── Ids, receipts, rate limiting ──────────────────────────────────────────────

ID_FORMATS: Final = ("hex", "upper-hex", "decimal")


def format_message_id(number: int, id_format: str) -> str:
    """The message id for ``number`` in one of ID_FORMATS."""
    if id_format == "hex":
        return format(number, "x")
    if id_format == "upper-hex":
        return format(number, "X")
    if id_format == "decimal":
        return str(number)
    raise ValueError(f"unknown id format {id_format!r}")


@functools.lru_cache(maxsize=64)
def _smpp_minute(minute: int) -> str:
    return time.strftime("%y%m%d%H%M", time.gmtime(minute * 60))


def smpp_date(epoch: float) -> str:
    """YYMMDDhhmm, UTC: the date form of a delivery receipt."""
    return _smpp_minute(int(epoch // 60))


@functools.lru_cache(maxsize=8)
def _iso_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def iso_utc(epoch: float) -> str:
    """ISO 8601 in UTC with milliseconds, e.g. 2024-05-01T12:00:00.123+00:00."""
    second = int(epoch)
    return f"{_iso_second(second)}.{int((epoch - second) * 1000):03d}+00:00"


def receipt_text(
    message_id: str, submitted: float, done: float, delivered: bool, text: str,
) -> str:
    """The SMPP 3.4 Appendix B delivery receipt body.

    ``text`` is cut to its first 20 characters and made ASCII ("?" for the
    rest), as the receipt travels in the GSM default alphabet.
    """
    stat, err, dlvrd = ("DELIVRD", "000", "001") if delivered else ("UNDELIV", "001", "000")
    snippet = text[:20].encode("ascii", errors="replace").decode("ascii")
    return (f"id:{message_id} sub:001 dlvrd:{dlvrd} submit date:{smpp_date(submitted)} "
            f"done date:{smpp_date(done)} stat:{stat} err:{err} text:{snippet}")


class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst``; starts full."""

    __slots__ = ("_clock", "_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic,
                 ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens = burst
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens >= 1:
            self._tokens = tokens - 1
            return True
        self._tokens = tokens
        return False


# ── The server ────────────────────────────────────────────────────────────────


@dataclass(slots=True)
class Options:
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str | None = None
    smsc_id: str = "SMSCSIM"
    inbound_capacity: int | None = None
    pullers: int = 8
    id_format: str = "hex"
    id_start: int | None = None
    journal: Path | None = None
    stats: Path | None = None
    receipt_delay_ms: float = 50.0
    undelivered_rate: float = 0.0
    lost_receipt_rate: float = 0.0
    receipt_tlvs: bool = True
    receipt_id_format: str | None = None
    receipt_before_resp: bool = False
    late_receipt_rate: float = 0.0
    late_receipt_ms: float = 5000.0
    throttle_rate: float = 0.0
    queue_full_rate: float = 0.0
    reject_rate: float = 0.0
    max_tps: float = 0.0
    burst: float | None = None
    latency_ms: float = 0.0
    seed: int | None = None


@dataclass(slots=True)
class _Receipt:
    session_id: str
    system_id: str
    source: str  # the receipt's source: the submit's destination
    destination: str
    body: bytes
    tlvs: list[Tlv]
    attempts: int = 0


RECEIPT_CHUNK: Final = 256
PUMP_IDLE_S: Final = 0.005
PUMP_MAX_IDLE_S: Final = 1.0
FLUSH_EVERY_S: Final = 0.1
MAX_RECEIPT_ATTEMPTS: Final = 5
RETRY_AFTER_S: Final = 1.0
MAX_PENDING_PER_SYSTEM: Final = 100_000


class Simulator:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.rng = random.Random(options.seed)
        self.server = smpp34.Server(
            options.host, options.port, system_id=options.smsc_id,
            **({"inbound_capacity": options.inbound_capacity}
               if options.inbound_capacity else {}))
        self.sessions: dict[str, Esme] = {}
        self.refused: set[str] = set()
        self.reassembler = Reassembler()
        self.next_id = options.id_start if options.id_start is not None else (
            (int(time.time() * 1000) & 0xFF_FFFF_FFFF) << 12)
        self.receipt_id_format = options.receipt_id_format or options.id_format
        self.bucket = (TokenBucket(options.max_tps, options.burst or max(1.0, options.max_tps / 10))
                       if options.max_tps > 0 else None)
        self.faults = (options.throttle_rate > 0 or options.queue_full_rate > 0
                       or options.reject_rate > 0)
        self.receipt_delay = options.receipt_delay_ms / 1000
        self.due: collections.deque[tuple[float, _Receipt]] = collections.deque()
        self.later: list[tuple[float, int, _Receipt]] = []
        self.later_seq = 0
        self.in_flight = 0
        self.pump_wake = asyncio.Event()
        self.state_tlvs = {True: Tlv(TAG_MESSAGE_STATE, bytes((STATE_DELIVERED,))),
                           False: Tlv(TAG_MESSAGE_STATE, bytes((STATE_UNDELIVERABLE,)))}
        self.waiting: dict[str, collections.deque[_Receipt]] = {}  # system_id -> no session
        self.journal_buffer: list[str] = []
        self.journal_file: TextIO | None = None
        self.client_refs: dict[str, int] = {}
        self.background: set[asyncio.Task[None]] = set()
        self.started_at = time.time()
        self.counts: collections.Counter[str] = collections.Counter()
        self.rejected: collections.Counter[str] = collections.Counter()
        self.loop = asyncio.get_running_loop()

    # ── events ──

    async def run_events(self) -> None:
        """Pull server events forever; nothing a peer does may end this loop.

        Several of these run at once: each ``server.next()`` is a hand-over
        from the Rust runtime's threads, and keeping a few outstanding
        pipelines those hand-overs (about twice the throughput of one puller,
        for less CPU a message). Events are still handled one at a time, on
        the one event loop.
        """
        server_next = self.server.next
        latency = self.o.latency_ms / 1000
        while True:
            try:
                event = await server_next()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.counts["event_errors"] += 1
                _warn(f"server.next() failed: {exc!r}")
                await asyncio.sleep(0.01)
                continue
            try:
                if isinstance(event, SubmitSmEvent):
                    if latency > 0:
                        self.loop.call_later(latency, self._submit_safely, event)
                    else:
                        self.on_submit(event)
                elif isinstance(event, Esme):
                    self.on_bind(event)
                elif isinstance(event, Unbound):
                    self.on_unbound(event.session_id)
            except Exception as exc:
                self.counts["event_errors"] += 1
                _warn(f"handling {type(event).__name__} failed: {exc!r}")

    def _submit_safely(self, event: SubmitSmEvent) -> None:
        try:
            self.on_submit(event)
        except Exception as exc:
            self.counts["event_errors"] += 1
            _warn(f"handling SubmitSmEvent failed: {exc!r}")

    def on_bind(self, esme: Esme) -> None:
        self.counts["binds"] += 1
        if self.o.system_id is not None and esme.system_id != self.o.system_id:
            self.counts["binds_refused"] += 1
            self.refused.add(esme.session_id)
            self._spawn(self._unbind(esme))
            return
        self.sessions[esme.session_id] = esme
        _warn(f"bound {esme.session_id} system_id={esme.system_id!r}")
        waiting = self.waiting.pop(esme.system_id, None)
        if waiting and esme.can_receive:
            now = self.loop.time()
            for receipt in waiting:
                self._push_later(now, receipt)

    async def _unbind(self, esme: Esme) -> None:
        with contextlib.suppress(Exception):
            await esme.unbind()

    def on_unbound(self, session_id: str) -> None:
        _warn(f"unbound {session_id} after {self.counts['submits']} submits")
        self.counts["unbinds"] += 1
        self.sessions.pop(session_id, None)
        self.refused.discard(session_id)

    def _reject(self, event: SubmitSmEvent, status: int, reason: str) -> None:
        self.rejected[reason] += 1
        if status == ESME_RTHROTTLED:
            self.counts["throttled"] += 1
        try:
            event.reject(status)
        except Exception as exc:
            self.counts["resp_failed"] += 1
            _warn(f"reject failed: {exc!r}")

    def on_submit(self, event: SubmitSmEvent) -> None:
        counts = self.counts
        counts["submits"] += 1
        session_id = event.session_id
        esme = self.sessions.get(session_id)
        if esme is None and session_id in self.refused:
            self._reject(event, ESME_RINVBNDSTS, "not_bound")
            return
        fault = self._injected_fault() if self.bucket is not None or self.faults else None
        if fault is not None:
            self._reject(event, *fault)
            return
        tlvs = {tlv.tag: tlv.value for tlv in event.tlvs}
        try:
            part = split_part(event.esm_class, event.short_message, tlvs)
        except SegmentError as exc:
            self._reject(event, exc.status, exc.reason)
            return
        raw_ref = tlvs.get(TAG_CLIENT_REF)
        client_ref = raw_ref.rstrip(b"\x00").decode("ascii", "replace") if raw_ref else None
        number = self.next_id
        self.next_id = number + 1
        message_id = format_message_id(number, self.o.id_format)
        system_id = esme.system_id if esme is not None else ""
        receipt = self._make_receipt(event, system_id, part, number)
        if receipt is not None and self.o.receipt_before_resp:
            self._spawn(self._receipt_then_accept(event, receipt, message_id))
        else:
            try:
                event.accept(message_id)
            except Exception as exc:
                counts["resp_failed"] += 1
                _warn(f"accept failed: {exc!r}")
                return
            if receipt is not None:
                if not self.due:
                    self.pump_wake.set()
                self.due.append((self.loop.time() + self.receipt_delay, receipt))
        counts["accepted"] += 1
        completed = self.reassembler.add(
            system_id, event.source_addr, event.destination_addr, part, event.data_coding,
            message_id, client_ref)
        if completed is not None:
            self._complete(completed)

    def _injected_fault(self) -> tuple[int, str] | None:
        """The token bucket first, then one draw split across the fault rates."""
        if self.bucket is not None and not self.bucket.take():
            return ESME_RTHROTTLED, "max_tps"
        if self.faults:
            o, draw = self.o, self.rng.random()
            for rate, status, reason in (
                (o.throttle_rate, ESME_RTHROTTLED, "throttled"),
                (o.queue_full_rate, ESME_RMSGQFUL, "queue_full"),
                (o.reject_rate, ESME_RINVDSTADR, "invalid_dest"),
            ):
                if draw < rate:
                    return status, reason
                draw -= rate
        return None

    def _make_receipt(
        self, event: SubmitSmEvent, system_id: str, part: Part, number: int,
    ) -> _Receipt | None:
        wanted = event.registered_delivery & 0x03
        if not wanted:
            return None
        o = self.o
        delivered = not (o.undelivered_rate > 0 and self.rng.random() < o.undelivered_rate)
        if wanted == 2 and delivered:  # receipts on failure only
            return None
        if o.lost_receipt_rate > 0 and self.rng.random() < o.lost_receipt_rate:
            self.counts["lost"] += 1
            return None
        if not delivered:
            self.counts["undelivered"] += 1
        receipt_id = format_message_id(number, self.receipt_id_format)
        now = time.time()
        body = receipt_text(receipt_id, now, now + self.receipt_delay, delivered,
                            decode_text(part.body, event.data_coding)).encode("ascii")
        tlvs = ([Tlv(TAG_RECEIPTED_MESSAGE_ID, receipt_id.encode("ascii") + b"\x00"),
                 self.state_tlvs[delivered]]
                if o.receipt_tlvs else [])
        receipt = _Receipt(event.session_id, system_id, event.destination_addr,
                           event.source_addr, body, tlvs)
        if o.late_receipt_rate > 0 and self.rng.random() < o.late_receipt_rate:
            self.counts["late_receipts"] += 1
            self._push_later(self.loop.time() + o.late_receipt_ms / 1000, receipt)
            return None
        return receipt

    async def _receipt_then_accept(
        self, event: SubmitSmEvent, receipt: _Receipt, message_id: str) -> None:
        await self._send_receipts([receipt])
        try:
            event.accept(message_id)
        except Exception as exc:
            self.counts["resp_failed"] += 1
            _warn(f"accept failed: {exc!r}")

    def _complete(self, completed: Completed) -> None:
        self.counts["messages_completed"] += 1
        ref = completed.client_ref
        if ref is not None:
            seen = self.client_refs.get(ref, 0) + 1
            self.client_refs[ref] = seen
            if seen == 2:
                self.counts["duplicate_client_refs"] += 1
        if self.journal_file is not None:
            self.journal_buffer.append(completed.journal_line(iso_utc(time.time())))

    # ── receipts ──

    def _push_later(self, due: float, receipt: _Receipt) -> None:
        self.later_seq += 1
        heapq.heappush(self.later, (due, self.later_seq, receipt))
        self.pump_wake.set()

    def _route(self, receipt: _Receipt) -> Esme | None:
        esme = self.sessions.get(receipt.session_id)
        if esme is not None and esme.can_receive:
            return esme
        for other in self.sessions.values():
            if other.system_id == receipt.system_id and other.can_receive:
                return other
        return None

    async def pump_receipts(self) -> None:
        """Send receipts as they fall due, in gathered chunks, every few ms."""
        due, later = self.due, self.later
        while True:
            now = self.loop.time()
            batch: list[_Receipt] = []
            while due and due[0][0] <= now:
                batch.append(due.popleft()[1])
            while later and later[0][0] <= now:
                batch.append(heapq.heappop(later)[2])
            if not batch:
                # New entries of `due` fall due after its head, so sleeping until
                # the earliest head is safe; when both queues are empty, wait to be
                # woken by the first new entry (no polling while idle).
                heads = [q[0][0] for q in (due, later) if q]
                if heads:
                    await asyncio.sleep(max(PUMP_IDLE_S, min(heads) - now))
                else:
                    self.pump_wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(PUMP_MAX_IDLE_S):
                            await self.pump_wake.wait()
                continue
            for start in range(0, len(batch), RECEIPT_CHUNK):
                try:
                    await self._send_receipts(batch[start : start + RECEIPT_CHUNK])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.counts["event_errors"] += 1
                    _warn(f"receipt batch failed: {exc!r}")

    async def _send_receipts(self, receipts: Sequence[_Receipt]) -> None:
        sends: list[Awaitable[smpp34.DeliverSmResp]] = []
        routed: list[_Receipt] = []
        for receipt in receipts:
            esme = self._route(receipt)
            if esme is None:
                self._park(receipt)
                continue
            try:
                sends.append(esme.deliver_sm(
                    receipt.destination, receipt.body, source_addr=receipt.source,
                    esm_class=ESM_DELIVERY_RECEIPT, tlvs=receipt.tlvs))
            except Exception:
                self._retry(receipt)
                continue
            routed.append(receipt)
        if not sends:
            return
        self.in_flight += len(sends)
        try:
            results = await asyncio.gather(*sends, return_exceptions=True)
        finally:
            self.in_flight -= len(sends)
        sent = 0
        for receipt, result in zip(routed, results, strict=True):
            if isinstance(result, BaseException) or not result.is_success:
                if self.counts["receipt_retries"] < 5:
                    _warn(f"deliver_sm failed: {result!r}")
                self._retry(receipt)
            else:
                sent += 1
        self.counts["receipts_sent"] += sent

    def _park(self, receipt: _Receipt) -> None:
        """No session can take it: hold it until one of its system_id binds."""
        waiting = self.waiting.setdefault(receipt.system_id, collections.deque())
        if len(waiting) >= MAX_PENDING_PER_SYSTEM:
            self.counts["receipts_dropped"] += 1
            return
        self.counts["receipts_parked"] += 1
        waiting.append(receipt)

    def _retry(self, receipt: _Receipt) -> None:
        receipt.attempts += 1
        if receipt.attempts >= MAX_RECEIPT_ATTEMPTS:
            self.counts["receipts_failed"] += 1
            return
        self.counts["receipt_retries"] += 1
        self._push_later(self.loop.time() + RETRY_AFTER_S, receipt)

    # ── journal, stats, lifecycle ──

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def flush_journal(self) -> None:
        if self.journal_file is not None and self.journal_buffer:
            self.journal_file.write("".join(self.journal_buffer))
            self.journal_buffer.clear()
            self.journal_file.flush()

    async def flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            try:
                self.flush_journal()
            except OSError as exc:
                _warn(f"journal write failed: {exc!r}")

    def stats(self) -> dict[str, Any]:
        c = self.counts
        pending_receipts = (len(self.due) + len(self.later)
                            + sum(len(w) for w in self.waiting.values()))
        return {
            "submits": c["submits"],
            "accepted": c["accepted"],
            "rejected": dict(sorted(self.rejected.items())),
            "rejected_total": sum(self.rejected.values()),
            "throttled": c["throttled"],
            "messages_completed": c["messages_completed"],
            "duplicate_client_refs": c["duplicate_client_refs"],
            "duplicate_parts": self.reassembler.duplicate_parts,
            "incomplete_messages": len(self.reassembler.pending),
            "abandoned_messages": self.reassembler.abandoned,
            "receipts_sent": c["receipts_sent"],
            "receipts_failed": c["receipts_failed"],
            "receipts_unsent": pending_receipts + self.in_flight,
            "receipts_in_flight": self.in_flight,
            "receipt_retries": c["receipt_retries"],
            "receipts_parked": c["receipts_parked"],
            "lost": c["lost"],
            "late_receipts": c["late_receipts"],
            "undelivered": c["undelivered"],
            "binds": c["binds"],
            "binds_refused": c["binds_refused"],
            "unbinds": c["unbinds"],
            "errors": c["event_errors"] + c["resp_failed"],
            "started_at": iso_utc(self.started_at),
            "stopped_at": iso_utc(time.time()),
        }

    async def run(self, stop: asyncio.Event) -> None:
        if self.o.journal is not None:
            self.o.journal.parent.mkdir(parents=True, exist_ok=True)
            self.journal_file = self.o.journal.open("a", encoding="utf-8")
        await self.server.start()
        print(f"SMSC listening on {self.o.host}:{self.o.port}", flush=True)
        workers = [asyncio.ensure_future(w) for w in (
            *(self.run_events() for _ in range(max(1, self.o.pullers))),
            self.pump_receipts(), self.flush_loop())]
        try:
            await stop.wait()
        finally:
            for task in [*workers, *self.background]:
                task.cancel()
            await asyncio.gather(*workers, *self.background, return_exceptions=True)
            try:
                await asyncio.wait_for(self.server.stop(), 5)
            except Exception as exc:
                _warn(f"server.stop() failed: {exc!r}")
            self.flush_journal()
            if self.journal_file is not None:
                self.journal_file.close()
            if self.o.stats is not None:
                _write_atomically(self.o.stats, json.dumps(self.stats(), indent=2) + "\n")


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _warn(message: str) -> None:
    print(f"smsc: {message}", file=sys.stderr, flush=True)


# ── CLI ───────────────────────────────────────────────────────────────────────


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("a rate is between 0 and 1")
    return value


def parse_args(argv: Sequence[str] | None = None) -> Options:
    p = argparse.ArgumentParser(
        prog="python -m smsgw.simulators.smsc",
        description="SMPP 3.4 SMSC simulator: accepts submits, journals messages, "
                    "sends delivery receipts, injects faults.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--system-id", help="only this ESME system_id may bind (others are unbound)")
    p.add_argument("--smsc-id", default="SMSCSIM", help="our system_id in bind responses")
    p.add_argument("--inbound-capacity", type=int, help="smpp34 Server inbound queue size")
    p.add_argument("--pullers", type=int, default=8,
                   help="concurrent server.next() awaiters (pipelines the event hand-over)")
    p.add_argument("--id-format", choices=ID_FORMATS, default="hex",
                   help="message ids in submit_sm_resp")
    p.add_argument("--id-start", type=int, help="first message id number (default: time-based)")
    p.add_argument("--journal", type=Path, help="append one JSON line per completed message")
    p.add_argument("--stats", type=Path, help="write final stats JSON here on shutdown")
    p.add_argument("--receipt-delay-ms", type=float, default=50.0)
    p.add_argument("--undelivered-rate", type=_rate, default=0.0,
                   help="fraction of receipts with stat:UNDELIV (message_state 5)")
    p.add_argument("--lost-receipt-rate", type=_rate, default=0.0,
                   help="fraction of receipts never sent")
    p.add_argument("--receipt-tlvs", action=argparse.BooleanOptionalAction, default=True,
                   help="add receipted_message_id and message_state TLVs to receipts")
    p.add_argument("--receipt-id-format", choices=ID_FORMATS,
                   help="id form inside receipts (default: --id-format)")
    p.add_argument("--receipt-before-resp", action="store_true",
                   help="send the receipt before the submit_sm_resp")
    p.add_argument("--late-receipt-rate", type=_rate, default=0.0)
    p.add_argument("--late-receipt-ms", type=float, default=5000.0)
    p.add_argument("--throttle-rate", type=_rate, default=0.0,
                   help="fraction of submits rejected with ESME_RTHROTTLED")
    p.add_argument("--queue-full-rate", type=_rate, default=0.0,
                   help="fraction of submits rejected with ESME_RMSGQFUL")
    p.add_argument("--reject-rate", type=_rate, default=0.0,
                   help="fraction of submits rejected permanently with ESME_RINVDSTADR")
    p.add_argument("--max-tps", type=float, default=0.0,
                   help="token bucket: submits over this rate get ESME_RTHROTTLED")
    p.add_argument("--burst", type=float, help="token bucket size (default: max(1, tps/10))")
    p.add_argument("--latency-ms", type=float, default=0.0,
                   help="delay before answering each submit")
    p.add_argument("--seed", type=int, help="seed for the fault and receipt draws")
    args = p.parse_args(argv)
    if args.throttle_rate + args.queue_full_rate + args.reject_rate > 1.0:
        p.error("--throttle-rate + --queue-full-rate + --reject-rate must not exceed 1")
    return Options(**{k: v for k, v in vars(args).items() if k in Options.__slots__})


async def serve(options: Options) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await Simulator(options).run(stop)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
