"""SMPP ``command_status``: what an SMSC's refusal means, however smpp34 reports it.

smpp34 reports a refused ``submit_sm`` in one of two ways. A ``submit_sm_resp``
comes back as a ``SubmitSmResp`` whose ``command_status`` is a typed int. A
``generic_nack`` is raised as ``SmppError``, which has no status field at
all: only its text, ``"ESME_RTHROTTLED (0x00000058)"``, and the library's own
failures (a timeout, a closed channel) raise the same class with other text.
:meth:`Refusal.of_error` is the one place that text is read, strictly, into
the same typed :class:`Refusal` a response gives; everything else branches
on :class:`CommandStatus`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

import smpp34

from smsgw.ports import ProviderError


class CommandStatus(enum.IntEnum):
    """SMPP 3.4 command_status values (section 5.1.3), named as the specification names them."""

    ESME_ROK = 0x00
    ESME_RINVMSGLEN = 0x01
    ESME_RINVCMDLEN = 0x02
    ESME_RINVCMDID = 0x03
    ESME_RINVBNDSTS = 0x04
    ESME_RALYBND = 0x05
    ESME_RINVPRTFLG = 0x06
    ESME_RINVREGDLVFLG = 0x07
    ESME_RSYSERR = 0x08
    ESME_RINVSRCADR = 0x0A
    ESME_RINVDSTADR = 0x0B
    ESME_RINVMSGID = 0x0C
    ESME_RBINDFAIL = 0x0D
    ESME_RINVPASWD = 0x0E
    ESME_RINVSYSID = 0x0F
    ESME_RCANCELFAIL = 0x11
    ESME_RREPLACEFAIL = 0x13
    ESME_RMSGQFUL = 0x14
    ESME_RINVSERTYP = 0x15
    ESME_RINVNUMDESTS = 0x33
    ESME_RINVDLNAME = 0x34
    ESME_RINVDESTFLAG = 0x40
    ESME_RINVSUBREP = 0x42
    ESME_RINVESMCLASS = 0x43
    ESME_RCNTSUBDL = 0x44
    ESME_RSUBMITFAIL = 0x45
    ESME_RINVSRCTON = 0x48
    ESME_RINVSRCNPI = 0x49
    ESME_RINVDSTTON = 0x50
    ESME_RINVDSTNPI = 0x51
    ESME_RINVSYSTYP = 0x53
    ESME_RINVREPFLAG = 0x54
    ESME_RINVNUMMSGS = 0x55
    ESME_RTHROTTLED = 0x58
    ESME_RINVSCHED = 0x61
    ESME_RINVEXPIRY = 0x62
    ESME_RINVDFTMSGID = 0x63
    ESME_RX_T_APPN = 0x64
    ESME_RX_P_APPN = 0x65
    ESME_RX_R_APPN = 0x66
    ESME_RQUERYFAIL = 0x67
    ESME_RINVOPTPARSTREAM = 0xC0
    ESME_ROPTPARNOTALLWD = 0xC1
    ESME_RINVPARLEN = 0xC2
    ESME_RMISSINGOPTPARAM = 0xC3
    ESME_RINVOPTPARAMVAL = 0xC4
    ESME_RDELIVERYFAILURE = 0xFE
    ESME_RUNKNOWNERR = 0xFF


_C = CommandStatus

# The SMSC is up but wants less traffic: slow down and submit again.
THROTTLING: frozenset[int] = frozenset({_C.ESME_RTHROTTLED, _C.ESME_RMSGQFUL})

# Refusals about the message itself: sending it again cannot help. The value
# is the error code's suffix (SMPP_INVALID_DESTINATION, ...).
PERMANENT: Mapping[int, str] = {
    _C.ESME_RINVMSGLEN: "INVALID_LENGTH",
    _C.ESME_RINVSRCADR: "INVALID_SOURCE",
    _C.ESME_RINVDSTADR: "INVALID_DESTINATION",
    _C.ESME_RINVDESTFLAG: "INVALID_DESTINATION_FLAG",
    _C.ESME_RINVSRCTON: "INVALID_SOURCE_TON",
    _C.ESME_RINVSRCNPI: "INVALID_SOURCE_NPI",
    _C.ESME_RINVDSTTON: "INVALID_DESTINATION_TON",
    _C.ESME_RINVDSTNPI: "INVALID_DESTINATION_NPI",
    _C.ESME_RX_R_APPN: "RECEIVER_REJECTED",
}

# Exactly how smpp34 writes a status into an SmppError; any other text names none.
_ERROR_TEXT = re.compile(r"(?P<name>ESME_\w+) \(0x(?P<value>[0-9A-Fa-f]{8})\)")


@dataclass(frozen=True, slots=True)
class Refusal:
    """An SMSC's refusal of one ``submit_sm``."""

    status: int | None  # None: smpp34 failed before any status came back
    description: str

    @classmethod
    def of_response(cls, response: smpp34.SubmitSmResp) -> Refusal:
        return cls(response.command_status, describe(response.command_status))

    @classmethod
    def of_error(cls, exc: smpp34.SmppError) -> Refusal:
        text = str(exc).strip()
        found = _ERROR_TEXT.fullmatch(text)
        if found is None:
            return cls(None, text[:200] or type(exc).__name__)
        return cls(int(found["value"], 16), describe(int(found["value"], 16)))

    @property
    def throttling(self) -> bool:
        return self.status in THROTTLING

    def error(self) -> ProviderError:
        if self.status is not None and self.status in PERMANENT:
            return ProviderError(f"SMPP_{PERMANENT[self.status]}", self.description,
                                 retryable=False)
        return ProviderError("SMPP_ERROR", self.description, retryable=True)


def describe(status: int) -> str:
    """``ESME_RTHROTTLED``; a status SMPP 3.4 does not define (vendor-specific) in hex."""
    try:
        return CommandStatus(status).name
    except ValueError:
        return f"0x{status:08x}"
