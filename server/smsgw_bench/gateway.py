"""``smsgw bench``: measures a running gateway over real gRPC and prints JSON.

Four measurements, each bounded in count and time so it stops by itself:

- ``unary``: accepted SendMessage calls per second at a fixed concurrency;
- ``bulk``: accepted items per second over the SendMessages stream;
- ``latency``: accept -> SENT at a fixed offered rate, from the moment each
  request is sent to the moment its SENT event arrives on a watch stream;
- ``relay``: how fast the relay hands a backlog to the provider, counted
  from SENT events while a bulk submission runs.
- ``smpp`` (not in ``all``): a backlog sent through the SMPP adapter to the
  SMSC simulator, by gateways this mode starts on a scratch database.
- ``relay-drain`` (not in ``all``): the relay alone draining a backlog, on
  gateways of its own on a scratch database (see smsgw_bench.relay and
  smsgw_bench.scratch); ``--server-pythonpath`` runs them from another
  checkout, for A/B.
- ``faults`` (not in ``all``): the store fault drills (Postgres restarted,
  Postgres stopped, Redis killed) under load, on gateways and stores this
  mode starts itself; no running gateway is needed.
- ``lanes`` and ``schedule`` (not in ``all``): the traffic policy (issue #11)
  on a gateway of their own; see smsgw_bench.lanes and smsgw_bench.schedule.

Requests are built before the clock starts, so the client spends its time
on the wire, not in Python: it shares the machine with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from smsgw.proto import sms_pb2 as pb
from smsgw.proto import sms_pb2_grpc
from smsgw_bench import faults, smpp

MODES = ("unary", "bulk", "latency", "relay")
SENT = pb.MESSAGE_STATUS_SENT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", default="all", choices=(
        *MODES, "smpp", "relay-drain", "faults", "lanes", "schedule", "all"))
    parser.add_argument("--smpp-window", type=int, default=32,
                        help="submit_sm outstanding per session (smpp mode)")
    parser.add_argument("--smpp-sessions", type=int, default=4,
                        help="binds the SMPP provider opens (smpp mode)")
    parser.add_argument("--count", type=int, default=20_000, help="messages per unary run")
    parser.add_argument("--concurrency", type=int, default=64, help="unary calls in flight")
    parser.add_argument("--channels", type=int, default=4, help="HTTP/2 connections")
    parser.add_argument("--bulk-count", type=int, default=50_000)
    parser.add_argument("--chunk", type=int, default=500, help="items per stream message")
    parser.add_argument("--rate", type=float, default=500.0, help="offered msg/s for latency")
    parser.add_argument("--seconds", type=float, default=20.0, help="latency run length")
    parser.add_argument("--relay-count", type=int, default=20_000)
    faults.add_arguments(parser)
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="hard stop for any one measurement")


@dataclass(frozen=True, slots=True)
class Target:
    address: str
    metadata: tuple[tuple[str, str], ...]
    run: str  # keeps idempotency keys unique across runs


async def run(args: argparse.Namespace, address: str, api_key: str) -> dict[str, Any]:
    target = Target(address, (("authorization", f"Bearer {api_key}"),), uuid.uuid4().hex[:12])
    if args.mode == "faults":  # gateways and stores of its own: nothing to drain first
        return {"modes": ["faults"], "faults": await faults.measure(args)}
    modes = MODES if args.mode == "all" else (args.mode,)
    report: dict[str, Any] = {"address": address, "modes": list(modes)}
    for mode in modes:
        measure = _MEASUREMENTS[mode]
        async with asyncio.timeout(args.max_seconds + 60):
            # Each phase starts on an idle gateway: no backlog left by the last one.
            report[mode] = {"drained_seconds": await _drain(target, args.max_seconds),
                            **await measure(args, target)}
    return report


async def _drain(target: Target, seconds: float) -> float:
    """Waits until the tenant has nothing QUEUED or SENDING; returns how long it took."""
    began = time.perf_counter()
    pending = pb.ListMessagesRequest(
        page_size=1, statuses=[pb.MESSAGE_STATUS_QUEUED, pb.MESSAGE_STATUS_SENDING])
    async with grpc.aio.insecure_channel(target.address) as channel:
        stub = sms_pb2_grpc.SmsServiceStub(channel)
        while time.perf_counter() - began < seconds:
            page = await stub.ListMessages(pending, metadata=target.metadata, timeout=30)
            if not page.messages:
                break
            await asyncio.sleep(0.25)
    return round(time.perf_counter() - began, 2)


def _requests(target: Target, label: str, count: int) -> list[pb.SendMessageRequest]:
    # 650-253-xxxx: valid US numbers; the body fits one GSM-7 segment.
    return [
        pb.SendMessageRequest(
            to=f"+1650253{i % 10_000:04d}", body=f"Your Ghasi code is {i % 1_000_000:06d}",
            idempotency_key=f"bench-{target.run}-{label}-{i}", client_reference=str(i))
        for i in range(count)
    ]


def _stubs(target: Target, channels: int) -> tuple[list[grpc.aio.Channel],
                                                   list[sms_pb2_grpc.SmsServiceStub]]:
    opened = [grpc.aio.insecure_channel(target.address) for _ in range(max(1, channels))]
    return opened, [sms_pb2_grpc.SmsServiceStub(c) for c in opened]


async def _close(channels: Sequence[grpc.aio.Channel]) -> None:
    for channel in channels:
        await channel.close(grace=None)


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    if not samples_ms:
        return {}
    ordered = sorted(samples_ms)
    cut = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else \
        [ordered[0]] * 99
    return {"p50_ms": round(cut[49], 2), "p95_ms": round(cut[94], 2),
            "p99_ms": round(cut[98], 2), "max_ms": round(ordered[-1], 2)}


async def _unary(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    requests = _requests(target, "unary", args.count)
    channels, stubs = _stubs(target, args.channels)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    next_index = iter(range(len(requests)))
    deadline = time.perf_counter() + args.max_seconds

    async def worker(stub: sms_pb2_grpc.SmsServiceStub) -> None:
        for index in next_index:
            if time.perf_counter() > deadline:
                return
            started = time.perf_counter()
            try:
                await stub.SendMessage(requests[index], metadata=target.metadata, timeout=30)
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker(stubs[i % len(stubs)]) for i in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    await _close(channels)
    return {"concurrency": args.concurrency, "channels": args.channels,
            "accepted": len(latencies), "errors": errors, "seconds": round(elapsed, 2),
            "accepted_per_second": round(len(latencies) / elapsed),
            "call_latency": _percentiles(latencies)}


async def _stream(stub: sms_pb2_grpc.SmsServiceStub, target: Target,
                  requests: list[pb.SendMessageRequest], chunk: int) -> tuple[int, int]:
    """Sends every request over one SendMessages stream; returns (accepted, failed)."""

    async def chunks() -> AsyncIterator[pb.SendMessagesRequest]:
        for start in range(0, len(requests), chunk):
            yield pb.SendMessagesRequest(items=requests[start:start + chunk])

    accepted = failed = 0
    async for response in stub.SendMessages(chunks(), metadata=target.metadata):
        for result in response.results:
            if result.HasField("message"):
                accepted += 1
            else:
                failed += 1
    return accepted, failed


async def _bulk(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    requests = _requests(target, "bulk", args.bulk_count)
    channels, stubs = _stubs(target, 1)
    started = time.perf_counter()
    accepted, failed = await _stream(stubs[0], target, requests, args.chunk)
    elapsed = time.perf_counter() - started
    await _close(channels)
    return {"chunk": args.chunk, "accepted": accepted, "errors": failed,
            "seconds": round(elapsed, 2), "accepted_per_second": round(accepted / elapsed)}


class _SentWatcher:
    """Follows the tenant's watch stream and notes when each message became SENT."""

    def __init__(self, stub: sms_pb2_grpc.SmsServiceStub, target: Target) -> None:
        self.sent_at: dict[str, float] = {}  # client clock, when the event arrived
        self.sent_server: dict[str, float] = {}  # server clock, when SENT was recorded
        self._changed = asyncio.Event()
        self._call = stub.WatchMessageStatus(pb.WatchMessageStatusRequest(),
                                             metadata=target.metadata)
        self.ready = asyncio.Event()
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        self.ready.set()  # the stream starts at "now" as soon as the server has it
        async for item in self._call:
            if item.HasField("event") and item.event.status == SENT:
                self.sent_at.setdefault(item.event.message_id, time.perf_counter())
                self.sent_server.setdefault(item.event.message_id,
                                            item.event.occur_time.ToNanoseconds() / 1e9)
                self._changed.set()

    async def wait_until(self, done: Callable[[], bool], seconds: float) -> None:
        """Returns when ``done()`` holds or after ``seconds``, whichever is first."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not done():
                    self._changed.clear()
                    await self._changed.wait()

    async def close(self) -> None:
        self._call.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await self._task


async def _latency(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    count = int(args.rate * args.seconds)
    requests = _requests(target, "latency", count)
    channels, stubs = _stubs(target, args.channels)
    watcher = _SentWatcher(stubs[0], target)
    await watcher.ready.wait()
    await asyncio.sleep(0.5)  # let the watch reach the server before the first send
    sent_at: dict[str, float] = {}
    accepted_at: dict[str, float] = {}  # server clock: the message's create_time
    errors = 0

    async def send(index: int, stub: sms_pb2_grpc.SmsServiceStub) -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            message = await stub.SendMessage(requests[index], metadata=target.metadata,
                                             timeout=30)
        except grpc.aio.AioRpcError:
            errors += 1
            return
        sent_at[message.id] = started
        accepted_at[message.id] = message.create_time.ToNanoseconds() / 1e9

    began = time.perf_counter()
    tasks = []
    for index, stub in zip(range(count), itertools.cycle(stubs), strict=False):
        # Open loop: requests leave on schedule whether or not earlier ones returned.
        delay = began + index / args.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(index, stub)))
    await asyncio.gather(*tasks)
    await watcher.wait_until(lambda: sent_at.keys() <= watcher.sent_at.keys(), seconds=30)
    await watcher.close()
    await _close(channels)
    server_side = [(watcher.sent_server[i] - t) * 1000 for i, t in accepted_at.items()
                   if i in watcher.sent_server]
    client_side = [(watcher.sent_at[i] - t) * 1000 for i, t in sent_at.items()
                   if i in watcher.sent_at]
    return {"offered_per_second": args.rate, "seconds": args.seconds, "requests": count,
            "accepted": len(sent_at), "errors": errors, "matched_sent": len(server_side),
            # Server clock, accept commit -> SENT commit: what the gateway adds.
            "accept_to_sent": _percentiles(server_side),
            # Client clock, request sent -> SENT event received: adds both client legs.
            "request_to_sent_event_seen": _percentiles(client_side)}


async def _relay(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    requests = _requests(target, "relay", args.relay_count)
    channels, stubs = _stubs(target, 2)
    watcher = _SentWatcher(stubs[1], target)
    await watcher.ready.wait()
    await asyncio.sleep(0.5)
    started = time.perf_counter()
    accepted, _failed = await _stream(stubs[0], target, requests, args.chunk)
    submitted = time.perf_counter()
    await watcher.wait_until(lambda: len(watcher.sent_at) >= accepted,
                             seconds=args.max_seconds - (submitted - started))
    await watcher.close()
    await _close(channels)
    # Server clock: when each SENT was recorded, so a slow watcher cannot skew it.
    times = sorted(watcher.sent_server.values())
    span = (times[-1] - times[0]) if len(times) > 1 else 0.0
    return {"messages": accepted, "sent": len(times),
            "submit_seconds": round(submitted - started, 2),
            "first_to_last_sent_seconds": round(span, 2),
            "sent_per_second": round(len(times) / span) if span > 0 else None}


async def _smpp(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    rig = smpp.SmppRig(args.smpp_window, args.smpp_sessions, smpp.environment())
    await rig.start()
    try:
        intake = await rig.start_gateway(relay=False)
        key = await rig.api_key()
        smpp_target = Target(intake, (("authorization", f"Bearer {key}"),), target.run)
        requests = _requests(smpp_target, "smpp", args.relay_count)
        channels, stubs = _stubs(smpp_target, 1)
        accepted, _failed = await _stream(stubs[0], smpp_target, requests, args.chunk)
        await _close(channels)
        await rig.stop_gateway()
        await rig.start_gateway(relay=True)
        started = time.perf_counter()
        while True:
            done = await smpp.progress(rig.database)
            if done.delivered >= accepted or time.perf_counter() - started > args.max_seconds:
                break
            await asyncio.sleep(0.25)
    finally:
        await rig.stop()
    return {"window": args.smpp_window, "sessions": args.smpp_sessions,
            "messages": accepted, "sent": done.sent, "delivered": done.delivered,
            "first_to_last_sent_seconds": round(done.sent_span, 2),
            "sent_per_second": round(done.sent / done.sent_span) if done.sent_span else None,
            # From the first SENT to the last DELIVERED: every receipt back and applied.
            "delivered_per_second": round(done.delivered / done.delivered_span)
            if done.delivered_span else None,
            "smsc": smpp.smsc_summary(rig.stats)}


_MEASUREMENTS = {"unary": _unary, "bulk": _bulk, "latency": _latency, "relay": _relay,
                 "smpp": _smpp}
