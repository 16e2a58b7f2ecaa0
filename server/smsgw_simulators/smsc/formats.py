"""Message ids and the delivery receipt's text, as SMSCs write them."""

from __future__ import annotations

import functools
import time
from typing import Final

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
    expired: bool = False,
) -> str:
    """The SMPP 3.4 Appendix B delivery receipt body.

    ``text`` is cut to its first 20 characters and made ASCII ("?" for the
    rest), as the receipt travels in the GSM default alphabet.
    """
    stat, err, dlvrd = ("DELIVRD", "000", "001") if delivered else ("UNDELIV", "001", "000")
    if expired:  # its validity_period ran out before it could be delivered
        stat, err, dlvrd = "EXPIRED", "000", "000"
    snippet = text[:20].encode("ascii", errors="replace").decode("ascii")
    return (f"id:{message_id} sub:001 dlvrd:{dlvrd} submit date:{smpp_date(submitted)} "
            f"done date:{smpp_date(done)} stat:{stat} err:{err} text:{snippet}")
