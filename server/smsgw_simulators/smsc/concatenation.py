"""Concatenation: which message a ``submit_sm`` belongs to, and reassembling the parts.

UDH with an 8- or 16-bit reference, SAR TLVs, or the whole text in
``message_payload``; duplicate parts and reused references are counted.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _json_string

from smsgw_simulators.smsc.codec import (
    ESM_UDHI,
    ESME_RINVESMCLASS,
    ESME_RINVOPTPARAMVAL,
    TAG_MESSAGE_PAYLOAD,
    TAG_SAR_MSG_REF_NUM,
    TAG_SAR_SEGMENT_SEQNUM,
    TAG_SAR_TOTAL_SEGMENTS,
    decode_text,
)


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
    validity_period: str | None = None  # as the ESME wrote it, when the tap read it

    def journal_line(self, received_at: str) -> str:
        """One JSON object and a newline (built by hand: this runs per message)."""
        q = _json_string
        ref = "null" if self.client_ref is None else q(self.client_ref)
        ids = ", ".join(map(q, self.message_ids))
        return (f'{{"client_ref": {ref}, "to": {q(self.to)}, "from": {q(self.from_)}, '
                f'"text": {q(self.text)}, "data_coding": {self.data_coding}, '
                f'"parts": {self.parts}, "message_ids": [{ids}], "mode": {q(self.mode)}, '
                f'"duplicate_parts": {self.duplicate_parts}, '
                + ("" if self.validity_period is None
                   else f'"validity_period": {q(self.validity_period)}, ')
                + f'"received_at": {q(received_at)}}}\n')


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
