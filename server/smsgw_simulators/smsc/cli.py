"""``python -m smsgw_simulators.smsc``: the simulator's options and its process."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

from smsgw_simulators.smsc.formats import ID_FORMATS
from smsgw_simulators.smsc.server import Options, Simulator


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("a rate is between 0 and 1")
    return value


def parse_args(argv: Sequence[str] | None = None) -> Options:
    p = argparse.ArgumentParser(
        prog="python -m smsgw_simulators.smsc",
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
    p.add_argument("--read-validity", action="store_true",
                   help="relay binds through a tap that reads each submit_sm's "
                        "validity_period into the journal (smpp34's events lack it)")
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

