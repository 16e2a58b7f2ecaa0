"""An SMSC simulator: the SMPP 3.4 peer our SMPP adapter is tested and benchmarked against.

Run it as its own process::

    python -m smsgw_simulators.smsc --port 2775 --journal /tmp/smsc.jsonl --stats /tmp/stats.json

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

Modules: ``codec`` (SMPP constants, GSM 03.38 and the other text codecs),
``concatenation`` (UDH, SAR, payload; reassembly), ``formats`` (message ids,
receipt text), ``faults`` (the token bucket and injected refusals),
``delivery`` (sending receipts), ``output`` (journal, stats), ``server`` (the
SMSC) and ``cli`` (options, the process). The pure pieces are re-exported
here for unit tests.
"""

from __future__ import annotations

from smsgw_simulators.smsc.cli import main, parse_args
from smsgw_simulators.smsc.codec import (
    ESM_DELIVERY_RECEIPT,
    ESM_UDHI,
    ESME_RINVBNDSTS,
    ESME_RINVDSTADR,
    ESME_RINVESMCLASS,
    ESME_RINVOPTPARAMVAL,
    ESME_RMSGQFUL,
    ESME_RTHROTTLED,
    GSM7_BASIC,
    GSM7_ESCAPE,
    GSM7_EXTENSION,
    STATE_DELIVERED,
    STATE_UNDELIVERABLE,
    TAG_CLIENT_REF,
    TAG_MESSAGE_PAYLOAD,
    TAG_MESSAGE_STATE,
    TAG_RECEIPTED_MESSAGE_ID,
    TAG_SAR_MSG_REF_NUM,
    TAG_SAR_SEGMENT_SEQNUM,
    TAG_SAR_TOTAL_SEGMENTS,
    decode_gsm7,
    decode_text,
)
from smsgw_simulators.smsc.concatenation import (
    Completed,
    Part,
    Reassembler,
    SegmentError,
    parse_udh,
    split_part,
)
from smsgw_simulators.smsc.faults import Faults, TokenBucket
from smsgw_simulators.smsc.formats import (
    ID_FORMATS,
    format_message_id,
    iso_utc,
    receipt_text,
    smpp_date,
)
from smsgw_simulators.smsc.server import Options, Simulator

__all__ = [
    "ESME_RINVBNDSTS", "ESME_RINVDSTADR", "ESME_RINVESMCLASS", "ESME_RINVOPTPARAMVAL",
    "ESME_RMSGQFUL", "ESME_RTHROTTLED", "ESM_DELIVERY_RECEIPT", "ESM_UDHI", "GSM7_BASIC",
    "GSM7_ESCAPE", "GSM7_EXTENSION", "ID_FORMATS", "STATE_DELIVERED", "STATE_UNDELIVERABLE",
    "TAG_CLIENT_REF", "TAG_MESSAGE_PAYLOAD", "TAG_MESSAGE_STATE", "TAG_RECEIPTED_MESSAGE_ID",
    "TAG_SAR_MSG_REF_NUM", "TAG_SAR_SEGMENT_SEQNUM", "TAG_SAR_TOTAL_SEGMENTS", "Completed",
    "Faults", "Options", "Part", "Reassembler", "SegmentError", "Simulator", "TokenBucket",
    "decode_gsm7", "decode_text", "format_message_id", "iso_utc", "main", "parse_args",
    "parse_udh", "receipt_text", "smpp_date", "split_part",
]
