"""Named SQL queries, kept in .sql files beside this module and loaded once.

A file holds several queries, each introduced by a ``-- name: <name>`` line.

Status numbers and transition guards are not written out in the SQL: they
are placeholders, filled from the state machine in ``smsgw.domain.status``
as a file loads, so the guards that run are the transitions declared there.

- ``{{status:SENT}}``: the status's number, ``3``;
- ``{{can_move_to:SENT}}``: the statuses that may become SENT, ``(2)``;
- ``{{can_move_from:SENT}}``: what a SENT message may become, ``(4, 5, 8)``.

Priority lanes (``smsgw.domain.lanes``) are filled the same way:

- ``{{lane:MARKETING}}``: the lane's number, ``2``;
- ``{{lane_of:traffic_class}}``: a CASE giving the lane of that column's class.

Appending status events is written once, here:

- ``{{append_events:updated}}``: the INSERT of one event per row of the CTE
  ``updated``, which returns the event's columns under their message names
  (``EVENT_SOURCE_COLUMNS``: ``id``, ``tenant_id``, ``status``,
  ``previous_status``, ``attempts``, ...). The log's trigger wakes watchers.
- ``{{first_events:inserted}}``: a new message's first event, in the state
  machine's ``INITIAL`` state, one per row of ``inserted`` (``id``,
  ``tenant_id``, ``client_reference``).

An empty set renders as ``(NULL)``, which no status is ``IN``. The text is
rendered once per process, so each statement is still prepared once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path

from smsgw.domain.lanes import LANE_OF_CLASS, Lane
from smsgw.domain.status import INITIAL, TRANSITIONS, MessageStatus, Transitions, sources_of

QUERY_DIR = Path(__file__).parent / "queries"
_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
PLACEHOLDER = re.compile(r"\{\{(\w+):(\w+)\}\}")


def parse(text: str) -> dict[str, str]:
    parts = _NAME.split(text)
    return {name: sql.strip() for name, sql in zip(parts[1::2], parts[2::2], strict=True)}


_EVENTS = re.compile(r"\{\{(append_events|first_events):(\w+)\}\}")


def expand_events(text: str) -> str:
    """The event placeholders written out (status placeholders stay for ``render``)."""
    return _EVENTS.sub(lambda m: (append_events if m[1] == "append_events"
                                  else first_events)(m[2]), text)


def render(text: str, transitions: Transitions = TRANSITIONS) -> str:
    """Fills the placeholders from ``transitions``; an unknown one is an error."""
    text = expand_events(text)

    def fill(match: re.Match[str]) -> str:
        kind, name = match[1], match[2]
        if kind in ("lane", "lane_of"):
            return _lane(kind, name)
        if name not in MessageStatus.__members__:
            raise ValueError(f"{match[0]}: no status is called {name}")
        status = MessageStatus[name]
        if kind == "status":
            return str(int(status))
        if kind == "can_move_to":
            return _sql_set(sources_of(status, transitions))
        if kind == "can_move_from":
            return _sql_set(transitions[status])
        raise ValueError(f"{match[0]}: unknown placeholder {kind}")

    rendered = PLACEHOLDER.sub(fill, text)
    if "{{" in rendered or "}}" in rendered:
        raise ValueError("a {{...}} in the SQL is not a placeholder of the form {{kind:STATUS}}")
    return rendered


# message_events column <- the source CTE's column.
EVENT_SOURCE_COLUMNS = {
    "message_id": "id", "tenant_id": "tenant_id", "status": "status",
    "previous_status": "previous_status", "attempt": "attempts", "provider": "provider",
    "provider_message_id": "provider_message_id", "error_code": "error_code",
    "error_description": "error_description", "client_reference": "client_reference"}


def append_events(source: str) -> str:
    return (f"INSERT INTO message_events ({', '.join(EVENT_SOURCE_COLUMNS)}) "
            f"SELECT {', '.join(EVENT_SOURCE_COLUMNS.values())} FROM {source}")


def first_events(source: str) -> str:
    """A new message's first event, in the state machine's initial state."""
    return ("INSERT INTO message_events (message_id, tenant_id, status, client_reference) "
            f"SELECT id, tenant_id, {{{{status:{INITIAL.name}}}}}, client_reference FROM {source}")


def _lane(kind: str, name: str) -> str:
    if kind == "lane_of":
        whens = " ".join(f"WHEN '{c}' THEN {int(lane)}" for c, lane in LANE_OF_CLASS.items())
        return f"(CASE {name} {whens} ELSE {int(Lane.TRANSACTIONAL)} END)"
    if name not in Lane.__members__:
        raise ValueError(f"{{{{lane:{name}}}}}: no lane is called {name}")
    return str(int(Lane[name]))


def _sql_set(statuses: Iterable[MessageStatus]) -> str:
    return "(" + (", ".join(str(int(s)) for s in sorted(statuses)) or "NULL") + ")"


def build(aggregate: str, transitions: Transitions = TRANSITIONS) -> dict[str, str]:
    """The named queries of one file, rendered from ``transitions``."""
    return parse(render((QUERY_DIR / f"{aggregate}.sql").read_text(), transitions))


@functools.cache
def load(aggregate: str) -> dict[str, str]:
    return build(aggregate)
