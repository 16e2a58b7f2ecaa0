"""The SQL runs the state machine declared in smsgw.domain.status.

Every status in the queries is a placeholder the loader fills from the
declaration (no status number is written out), and every statement that
changes a message's status is guarded by the declaration: either its old
status is in ``{{can_move_to:NEW}}``, or it is one ``{{status:OLD}}`` and the
new one is in ``{{can_move_from:OLD}}``. The checker below reads the raw
.sql files; the mutations at the end prove it catches what it should.
tests/integration/test_state_machine_sql.py runs the statements themselves.
"""

from __future__ import annotations

import re

import pytest

from smsgw.adapters.postgres import queries
from smsgw.domain.status import INITIAL, TRANSITIONS, MessageStatus, sources_of

S = MessageStatus
RAW = {(path.stem, name): sql
       for path in sorted(queries.QUERY_DIR.glob("*.sql"))
       for name, sql in queries.parse(path.read_text()).items()}
STATUS_CHANGES = {("messages", "cancel_message"), ("outbox", "claim_due"),
                  ("outbox", "record_outcomes"), ("outbox", "expire_overdue"),
                  ("receipts", "apply_receipts"),
                  ("receipts", "expire_unreceipted")}

_COMMENT = re.compile(r"--[^\n]*")
_STRING = re.compile(r"'(?:[^']|'')*'")
# A status column compared with, or set to, a number, either way round.
_LITERAL = re.compile(
    r"\w*status\s*(?:=|<>|!=)\s*\d|\w*status\s+(?:NOT\s+)?IN\s*\(\s*\d"
    r"|\d\s*(?:=|<>|!=)\s*(?:\w+\.)?\w*status\b", re.IGNORECASE)
# A CASE (not nested) that is set to, or named, a status column.
_CASE = re.compile(r"(\w*status\s*=\s*)?\bCASE\b((?:(?!\bCASE\b|\bEND\b).)*)\bEND\b"
                   r"(\s+AS\s+\w*status\b)?", re.IGNORECASE | re.DOTALL)
_INSERT = re.compile(r"INSERT INTO (\w+)\s*\(([^)]*)\)\s*(SELECT\b|VALUES\s*\()", re.IGNORECASE)
_SET_CLAUSE = re.compile(r"UPDATE messages\b.*?\bSET\b(.*?)\b(?:FROM|WHERE|RETURNING)\b",
                         re.IGNORECASE | re.DOTALL)
_SETS_STATUS = re.compile(r"(?<![\w.])status\s*=\s*([^,\s]+)")
_IS = re.compile(r"(?<![\w.])((?:\w+\.)?status) = \{\{status:(\w+)\}\}")


# A constant status returned under a column's name: "{{status:SENT}} AS previous_status".
_PINNED_AS = re.compile(r"(\{\{status:\w+\}\}|\d+)\s+AS\s+(\w*status)\b", re.IGNORECASE)


def _clean(sql: str) -> str:
    """Comments and strings out; the event-append placeholder written out, as it runs."""
    sql = queries.expand_events(sql)
    return _STRING.sub("''", _COMMENT.sub("", sql))


def _resolve(value: str, sql: str) -> str:
    """A column a CTE returned as a constant is that constant."""
    for constant, name in _PINNED_AS.findall(sql):
        if name == value:
            return str(constant)
    return value


def _split_top_level(text: str, stop: re.Pattern[str]) -> list[str]:
    """The comma-separated expressions of a SELECT or VALUES list, up to ``stop``."""
    items, depth, start, i = [], 0, 0, 0
    while i < len(text):
        char = text[i]
        if depth == 0 and (char == ")" or stop.match(text, i)):
            break
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
        i += 1
    return [*items, text[start:i].strip()]


def inserted_values(sql: str) -> dict[str, list[dict[str, str]]]:
    """For each INSERT, the expression written into each column."""
    found: dict[str, list[dict[str, str]]] = {}
    for match in _INSERT.finditer(sql):
        columns = [c.strip() for c in match[2].split(",")]
        values = _split_top_level(sql[match.end():], re.compile(r"\s*\bFROM\b", re.IGNORECASE))
        found.setdefault(match[1], []).append(dict(zip(columns, values, strict=False)))
    return found


def literal_problems(sql: str) -> list[str]:
    problems = [f"status number written out: {m[0]!r}" for m in _LITERAL.finditer(sql)]
    problems += [f"status number written out: {m[0]!r}" for m in _PINNED_AS.finditer(sql)
                 if m[1].isdigit()]
    for case in _CASE.finditer(sql):
        if (case[1] or case[3]) and re.search(r"\b(?:THEN|ELSE)\s+\d", case[2]):
            problems.append(f"status number written out in {case[0]!r}")
    for table, rows in inserted_values(sql).items():
        for row in rows:
            problems += [f"{table}.{column} written as the number {value}"
                         for column, value in row.items()
                         if column.endswith("status") and value.isdigit()]
    return problems


def _set_status(sql: str) -> str | None:
    """What an UPDATE of messages sets the status to, if it does."""
    for clause in _SET_CLAUSE.finditer(sql):
        if (found := _SETS_STATUS.search(clause[1])) is not None:
            return found[1]
    return None


def transition_problems(sql: str) -> list[str]:
    """An UPDATE of a message's status must be guarded by the declared machine."""
    new = _set_status(sql)
    if new is None:
        return []
    constant = re.fullmatch(r"\{\{status:(\w+)\}\}", new)
    moves_to = set(re.findall(r"\{\{can_move_to:(\w+)\}\}", sql))
    status_in = set(re.findall(r"(?<![\w])(?:\w+\.)?status IN \{\{can_move_to:(\w+)\}\}", sql))
    moves_from = set(re.findall(r"(\S+) IN \{\{can_move_from:(\w+)\}\}", sql))
    # Comparing the new status itself (w.status = SENT) guards nothing.
    guarded_by = {old for column, old in _IS.findall(sql) if column != new}
    events = inserted_values(sql).get("message_events", [])
    problems = [f"{{{{can_move_to:{x}}}}} does not guard this UPDATE, which sets status {new}"
                for x in moves_to if constant is None or x != constant[1]]
    problems += [f"{expr} IN {{{{can_move_from:{old}}}}} without a status = {{{{status:{old}}}}} "
                 "guard" for expr, old in moves_from if old not in guarded_by]
    by_set = constant is not None and constant[1] in status_in
    by_pair = [old for expr, old in moves_from if expr == new and old in guarded_by]
    if not (by_set or by_pair):
        problems.append(f"the UPDATE to {new} is guarded neither by {{{{can_move_to:...}}}} "
                        "nor by status = {{status:OLD}} with the new status in "
                        "{{can_move_from:OLD}}")
    if not events:
        problems.append("a status change appends no event")
    for written in events:
        event = {**written, "status": _resolve(written.get("status", ""), sql)}
        if event.get("status") != new and not re.fullmatch(r"(?:\w+\.)?status",
                                                            event.get("status", "")):
            problems.append(f"the event's status is {event.get('status')}, not {new}")
        previous = _resolve(event.get("previous_status", ""), sql)
        pinned = re.fullmatch(r"\{\{status:(\w+)\}\}", previous)
        if pinned is None and not re.fullmatch(r"(?:\w+\.)?\w+", previous):
            problems.append(f"the event's previous status is {previous!r}")
        elif pinned is not None and pinned[1] not in by_pair:
            problems.append(f"the event's previous status is pinned to {pinned[1]}, but the "
                            "guard lets other statuses through")
    return problems


def insert_problems(sql: str) -> list[str]:
    """New messages and their first events start in the machine's initial state."""
    initial = f"{{{{status:{INITIAL.name}}}}}"
    inserts = inserted_values(sql)
    if "messages" not in inserts:
        return []
    problems = [f"a message is inserted as {row.get('status')}, not {initial}"
                for row in inserts["messages"] if row.get("status") != initial]
    problems += [f"a new message's first event is {row.get('status')}, not {initial}"
                 for row in inserts.get("message_events", []) if row.get("status") != initial]
    if "message_events" not in inserts:
        problems.append("a new message has no first event")
    return problems


def problems(sql: str) -> list[str]:
    sql = _clean(sql)
    return literal_problems(sql) + transition_problems(sql) + insert_problems(sql)


@pytest.mark.parametrize("key", sorted(RAW), ids="/".join)
def test_every_query_follows_the_state_machine(key: tuple[str, str]) -> None:
    assert problems(RAW[key]) == []


def test_the_checker_sees_every_status_change() -> None:
    assert {key for key, sql in RAW.items() if _set_status(_clean(sql))} == STATUS_CHANGES
    assert {key for key, sql in RAW.items() if "messages" in inserted_values(_clean(sql))} == {
        ("messages", "insert_messages"), ("messages", "insert_messages_within_quota"),
        ("dead_letters", "insert_replay")}


def test_every_query_renders_without_a_placeholder_left() -> None:
    for (aggregate, name), raw in RAW.items():
        rendered = queries.load(aggregate)[name]
        assert "{{" not in rendered
        assert rendered == queries.render(raw)


@pytest.mark.parametrize("status", list(MessageStatus), ids=lambda s: s.name)
def test_placeholders_render_the_declared_sets(status: MessageStatus) -> None:
    def as_set(text: str) -> set[int]:
        return {int(n) for n in re.findall(r"\d+", text)}

    assert queries.render(f"{{{{status:{status.name}}}}}") == str(int(status))
    assert as_set(queries.render(f"{{{{can_move_to:{status.name}}}}}")) == set(sources_of(status))
    assert as_set(queries.render(f"{{{{can_move_from:{status.name}}}}}")) == set(
        TRANSITIONS[status])


def test_an_empty_set_renders_as_one_that_matches_nothing() -> None:
    assert queries.render("{{can_move_from:DELIVERED}}") == "(NULL)"
    assert queries.render("x IN {{can_move_to:SENT}}") == "x IN (2)"


@pytest.mark.parametrize("text", ["{{status:SENDED}}", "{{can_go_to:SENT}}", "{{ status:SENT }}",
                                  "{{status}}", "status IN {{can_move_to:SENT}"])
def test_a_malformed_placeholder_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"placeholder|no status"):
        queries.render(text)


def test_the_rendered_guards_follow_a_changed_declaration() -> None:
    changed = dict(TRANSITIONS)
    changed[S.SENT] = frozenset({S.DELIVERED, S.UNDELIVERED})  # no more SENT -> EXPIRED
    changed[S.SENDING] = TRANSITIONS[S.SENDING] | {S.CANCELED}
    outbox = queries.build("receipts", changed)["expire_unreceipted"]
    assert "WHERE status = 3 AND 8 IN (4, 5)" in outbox
    cancel = queries.build("messages", changed)["cancel_message"]
    assert "m.status IN (1, 2)" in cancel
    assert queries.build("receipts", changed) != queries.load("receipts")


# Each mutation of a real query must be caught: (query, replace, with, problem).
MUTATIONS = [
    (("messages", "cancel_message"), "{{can_move_to:CANCELED}}", "(1)", "number written out"),
    (("messages", "cancel_message"), "{{can_move_to:CANCELED}}", "{{can_move_to:SENDING}}",
     "does not guard"),
    (("messages", "cancel_message"), "m.status IN {{can_move_to:CANCELED}}", "true",
     "guarded neither"),
    (("messages", "cancel_message"), "RETURNING m.*, d.previous_status",
     "RETURNING m.*, {{status:QUEUED}} AS previous_status", "pinned to QUEUED"),
    (("messages", "insert_messages"), "encoding, segments, {{status:QUEUED}}",
     "encoding, segments, 1", "written as the number"),
    (("messages", "insert_messages"), "encoding, segments, {{status:QUEUED}}",
     "encoding, segments, {{status:SENDING}}", "inserted as {{status:SENDING}}"),
    (("outbox", "claim_due"), "p.status IN {{can_move_to:SENDING}} OR ", "p.status = 1 OR ",
     "number written out"),
    (("outbox", "claim_due"),
     "(p.status IN {{can_move_to:SENDING}} OR p.status = {{status:SENDING}})",
     "p.status IN (1, 2)", "guarded neither"),
    (("outbox", "claim_due"), "m.status, p.status AS previous_status",
     "{{status:SENT}} AS status, p.status AS previous_status",
     "the event's status is {{status:SENT}}"),
    (("outbox", "record_outcomes"), " AND w.status IN {{can_move_from:SENDING}}", "",
     "guarded neither"),
    (("outbox", "record_outcomes"),
     "m.status = {{status:SENDING}} AND w.status IN {{can_move_from:SENDING}}",
     "w.status IN {{can_move_from:SENT}}", "without a status = {{status:SENT}}"),
    (("outbox", "record_outcomes"), "m.status = {{status:SENDING}}", "m.status = {{status:SENT}}",
     "without a status = {{status:SENDING}}"),
    (("outbox", "record_outcomes"), "CASE WHEN w.status = {{status:SENT}}",
     "CASE WHEN w.status = 3", "number written out"),
    (("outbox", "expire_overdue"), "m.status IN {{can_move_to:EXPIRED}}", "true",
     "guarded neither"),
    (("outbox", "expire_overdue"), "{{can_move_to:EXPIRED}}", "{{can_move_to:CANCELED}}",
     "does not guard"),
    (("outbox", "expire_overdue"), "SET status = {{status:EXPIRED}}", "SET status = 8",
     "number written out"),
    (("outbox", "expire_overdue"), "d.previous_status, m.attempts",
     "{{status:QUEUED}} AS previous_status, m.attempts", "pinned to QUEUED"),
    (("receipts", "apply_receipts"), "i.status IN {{can_move_from:SENT}}",
     "i.status IN (4, 5, 8)", "guarded neither"),
    (("receipts", "apply_receipts"), "{{status:SENT}} AS previous_status",
     "3 AS previous_status", "number written out"),
    (("receipts", "apply_receipts"), "AND m.status = {{status:SENT}}\n      AND EXISTS",
     "AND m.status IN {{can_move_to:DELIVERED}}\n      AND EXISTS", "pinned to SENT"),
    (("receipts", "expire_unreceipted"), " AND {{status:EXPIRED}} IN {{can_move_from:SENT}}", "",
     "guarded neither"),
    (("receipts", "expire_unreceipted"), "SET status = {{status:EXPIRED}}", "SET status = 8",
     "number written out"),
    (("receipts", "expire_unreceipted"), "SET status = {{status:EXPIRED}}, error_code",
     "SET error_code = '', status = {{status:CANCELED}}, error_code", "guarded neither"),
    (("receipts", "settled_multipart"), "THEN {{status:UNDELIVERED}}", "THEN 5",
     "number written out in"),
    (("receipts", "find_provider_refs"), "status <> {{status:SENT}}", "status <> 3",
     "number written out"),
    (("dead_letters", "insert_replay"), "{{first_events:inserted}}", "SELECT 1",
     "has no first event"),
]


@pytest.mark.parametrize(("key", "old", "new", "problem"), MUTATIONS,
                         ids=[f"{k[1]}:{n}" for k, _, n, _ in MUTATIONS])
def test_a_changed_guard_is_caught(key: tuple[str, str], old: str, new: str, problem: str) -> None:
    assert RAW[key].count(old) == 1, "the mutation no longer applies: update it"
    found = problems(RAW[key].replace(old, new))
    assert any(problem in p for p in found), found


def test_an_event_less_status_change_is_caught() -> None:
    sql = RAW[("receipts", "expire_unreceipted")]
    without_event = sql[:sql.index("), evented AS")] + ")\nSELECT count(*) FROM updated;"
    assert "a status change appends no event" in problems(without_event)


def test_a_first_event_is_in_the_declared_initial_state() -> None:
    rendered = queries.render("{{first_events:inserted}}")
    assert f"SELECT id, tenant_id, {int(INITIAL)}, client_reference FROM inserted" in rendered
    assert rendered.startswith("INSERT INTO message_events (message_id, tenant_id, status,")


def test_every_event_is_appended_through_the_placeholders() -> None:
    """No query writes message_events by hand: the two placeholders are the one way."""
    for (aggregate, name), raw in RAW.items():
        assert "INSERT INTO message_events" not in raw.upper().replace("\n", " "), (aggregate,
                                                                                    name)
