"""Postgres: the source of truth for messages, the outbox and the event log."""
