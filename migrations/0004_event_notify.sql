-- Appending to the event log wakes its watchers: the log sends the NOTIFY
-- itself, once per statement that appended any row, so a query that records
-- a status change only INSERTs its events. Statement-level, with a transition
-- table, so a batch of a thousand events costs one call, not a thousand. The
-- NOTIFY is delivered at commit, and a second one in the same transaction
-- (from a statement that still sends its own) is folded into the first.

CREATE FUNCTION message_events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('smsgw_events', '') WHERE EXISTS (SELECT 1 FROM appended);
    RETURN NULL;
END;
$$;

CREATE TRIGGER message_events_notify
    AFTER INSERT ON message_events
    REFERENCING NEW TABLE AS appended
    FOR EACH STATEMENT EXECUTE FUNCTION message_events_notify();
