"""The SMSC itself: binds, ``submit_sm`` answered or refused, messages completed and journaled.

Events are pulled from smpp34's server by several awaiters at once and
handled one at a time on the event loop; receipts go through the
:class:`~smsgw_simulators.smsc.delivery.ReceiptPump`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import smpp34
from smpp34 import Esme, SubmitSmEvent, Tlv, Unbound

from smsgw_simulators.smsc.codec import (
    ESME_RINVBNDSTS,
    ESME_RTHROTTLED,
    STATE_DELIVERED,
    STATE_EXPIRED,
    STATE_UNDELIVERABLE,
    TAG_CLIENT_REF,
    TAG_MESSAGE_STATE,
    TAG_RECEIPTED_MESSAGE_ID,
    decode_text,
)
from smsgw_simulators.smsc.concatenation import (
    Completed,
    Part,
    Reassembler,
    SegmentError,
    split_part,
)
from smsgw_simulators.smsc.delivery import Receipt, ReceiptPump
from smsgw_simulators.smsc.faults import Faults
from smsgw_simulators.smsc.formats import format_message_id, iso_utc, receipt_text
from smsgw_simulators.smsc.output import Journal, warn, write_atomically
from smsgw_simulators.smsc.tap import ValidityTap, free_loopback_port, relative_seconds


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
    read_validity: bool = False  # relay connections through a tap that reads validity_period



class Simulator:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.rng = random.Random(options.seed)
        self.tap: ValidityTap | None = None
        host, port = options.host, options.port
        if options.read_validity:
            host, port = "127.0.0.1", free_loopback_port()
            self.tap = ValidityTap(options.host, options.port, port)
        self.server = smpp34.Server(
            host, port, system_id=options.smsc_id,
            **({"inbound_capacity": options.inbound_capacity}
               if options.inbound_capacity else {}))
        self.sessions: dict[str, Esme] = {}
        self.refused: set[str] = set()
        self.reassembler = Reassembler()
        self.next_id = options.id_start if options.id_start is not None else (
            (int(time.time() * 1000) & 0xFF_FFFF_FFFF) << 12)
        self.receipt_id_format = options.receipt_id_format or options.id_format
        self.faults = Faults(self.rng, throttle_rate=options.throttle_rate,
                             queue_full_rate=options.queue_full_rate,
                             reject_rate=options.reject_rate, max_tps=options.max_tps,
                             burst=options.burst)
        self.receipt_delay = options.receipt_delay_ms / 1000
        self.state_tlvs = {True: Tlv(TAG_MESSAGE_STATE, bytes((STATE_DELIVERED,))),
                           False: Tlv(TAG_MESSAGE_STATE, bytes((STATE_UNDELIVERABLE,)))}
        self.expired_tlv = Tlv(TAG_MESSAGE_STATE, bytes((STATE_EXPIRED,)))
        self.journal = Journal(options.journal)
        self.client_refs: dict[str, int] = {}
        self.background: set[asyncio.Task[None]] = set()
        self.started_at = time.time()
        self.counts: collections.Counter[str] = collections.Counter()
        self.rejected: collections.Counter[str] = collections.Counter()
        self.loop = asyncio.get_running_loop()
        self.receipts = ReceiptPump(self.sessions, self.counts)

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
                warn(f"server.next() failed: {exc!r}")
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
                warn(f"handling {type(event).__name__} failed: {exc!r}")

    def _submit_safely(self, event: SubmitSmEvent) -> None:
        try:
            self.on_submit(event)
        except Exception as exc:
            self.counts["event_errors"] += 1
            warn(f"handling SubmitSmEvent failed: {exc!r}")

    def on_bind(self, esme: Esme) -> None:
        self.counts["binds"] += 1
        if self.o.system_id is not None and esme.system_id != self.o.system_id:
            self.counts["binds_refused"] += 1
            self.refused.add(esme.session_id)
            self._spawn(self._unbind(esme))
            return
        self.sessions[esme.session_id] = esme
        warn(f"bound {esme.session_id} system_id={esme.system_id!r}")
        self.receipts.bound(esme)

    async def _unbind(self, esme: Esme) -> None:
        with contextlib.suppress(Exception):
            await esme.unbind()

    def on_unbound(self, session_id: str) -> None:
        warn(f"unbound {session_id} after {self.counts['submits']} submits")
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
            warn(f"reject failed: {exc!r}")

    def on_submit(self, event: SubmitSmEvent) -> None:
        counts = self.counts
        counts["submits"] += 1
        session_id = event.session_id
        esme = self.sessions.get(session_id)
        if esme is None and session_id in self.refused:
            self._reject(event, ESME_RINVBNDSTS, "not_bound")
            return
        fault = self.faults.draw() if self.faults.active else None
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
        receipt = self._make_receipt(event, system_id, part, number,
                                     self._expires_first(client_ref))
        if receipt is not None and self.o.receipt_before_resp:
            self._spawn(self._receipt_then_accept(event, receipt, message_id))
        else:
            try:
                event.accept(message_id)
            except Exception as exc:
                counts["resp_failed"] += 1
                warn(f"accept failed: {exc!r}")
                return
            if receipt is not None:
                self.receipts.after(self.receipt_delay, receipt)
        counts["accepted"] += 1
        completed = self.reassembler.add(
            system_id, event.source_addr, event.destination_addr, part, event.data_coding,
            message_id, client_ref)
        if completed is not None:
            if self.tap is not None and client_ref is not None:
                completed.validity_period = self.tap.validity.get(client_ref)
            self._complete(completed)

    def _expires_first(self, client_ref: str | None) -> bool:
        """Whether the message's validity_period (when the tap read one) ends before
        its receipt is due: it then expires undelivered, as an SMSC honours it."""
        if self.tap is None or client_ref is None:
            return False
        seconds = relative_seconds(self.tap.validity.get(client_ref, ""))
        return seconds is not None and seconds < self.receipt_delay

    def _make_receipt(
        self, event: SubmitSmEvent, system_id: str, part: Part, number: int,
        expired: bool = False,
    ) -> Receipt | None:
        wanted = event.registered_delivery & 0x03
        if not wanted:
            return None
        o = self.o
        delivered = not expired and not (
            o.undelivered_rate > 0 and self.rng.random() < o.undelivered_rate)
        if wanted == 2 and delivered:  # receipts on failure only
            return None
        if o.lost_receipt_rate > 0 and self.rng.random() < o.lost_receipt_rate:
            self.counts["lost"] += 1
            return None
        if expired:
            self.counts["expired"] += 1
        elif not delivered:
            self.counts["undelivered"] += 1
        receipt_id = format_message_id(number, self.receipt_id_format)
        now = time.time()
        body = receipt_text(receipt_id, now, now + self.receipt_delay, delivered,
                            decode_text(part.body, event.data_coding),
                            expired=expired).encode("ascii")
        state = self.expired_tlv if expired else self.state_tlvs[delivered]
        tlvs = ([Tlv(TAG_RECEIPTED_MESSAGE_ID, receipt_id.encode("ascii") + b"\x00"), state]
                if o.receipt_tlvs else [])
        receipt = Receipt(event.session_id, system_id, event.destination_addr,
                          event.source_addr, body, tlvs)
        if o.late_receipt_rate > 0 and self.rng.random() < o.late_receipt_rate:
            self.counts["late_receipts"] += 1
            self.receipts.later_by(o.late_receipt_ms / 1000, receipt)
            return None
        return receipt

    async def _receipt_then_accept(
        self, event: SubmitSmEvent, receipt: Receipt, message_id: str) -> None:
        await self.receipts.send([receipt])
        try:
            event.accept(message_id)
        except Exception as exc:
            self.counts["resp_failed"] += 1
            warn(f"accept failed: {exc!r}")

    def _complete(self, completed: Completed) -> None:
        self.counts["messages_completed"] += 1
        ref = completed.client_ref
        if ref is not None:
            seen = self.client_refs.get(ref, 0) + 1
            self.client_refs[ref] = seen
            if seen == 2:
                self.counts["duplicate_client_refs"] += 1
        if self.journal.enabled:
            self.journal.append(completed.journal_line(iso_utc(time.time())))

    # ── stats and lifecycle ──

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def stats(self) -> dict[str, Any]:
        c = self.counts
        in_flight = self.receipts.in_flight
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
            "receipts_unsent": self.receipts.pending() + in_flight,
            "receipts_in_flight": in_flight,
            "receipt_retries": c["receipt_retries"],
            "receipts_parked": c["receipts_parked"],
            "lost": c["lost"],
            "late_receipts": c["late_receipts"],
            "undelivered": c["undelivered"],
            "expired": c["expired"],
            "binds": c["binds"],
            "binds_refused": c["binds_refused"],
            "unbinds": c["unbinds"],
            "errors": c["event_errors"] + c["resp_failed"],
            "started_at": iso_utc(self.started_at),
            "stopped_at": iso_utc(time.time()),
        }

    async def run(self, stop: asyncio.Event) -> None:
        self.journal.open()
        await self.server.start()
        if self.tap is not None:
            await self.tap.start()
        print(f"SMSC listening on {self.o.host}:{self.o.port}", flush=True)
        workers = [asyncio.ensure_future(w) for w in (
            *(self.run_events() for _ in range(max(1, self.o.pullers))),
            self.receipts.run(), self.journal.flush_loop())]
        try:
            await stop.wait()
            await self.receipts.settle(seconds=2)
        finally:
            if self.tap is not None:
                await self.tap.stop()
            for task in [*workers, *self.background]:
                task.cancel()
            await asyncio.gather(*workers, *self.background, return_exceptions=True)
            try:
                await asyncio.wait_for(self.server.stop(), 5)
            except Exception as exc:
                warn(f"server.stop() failed: {exc!r}")
            self.journal.close()
            if self.o.stats is not None:
                write_atomically(self.o.stats, json.dumps(self.stats(), indent=2) + "\n")
