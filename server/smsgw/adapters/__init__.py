"""Adapters: the ports' implementations over Postgres, Redis and providers."""
