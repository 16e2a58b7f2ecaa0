"""Ghasi SMS Gateway: one gRPC service for every SMS a platform sends."""

__version__ = "0.1.0"
