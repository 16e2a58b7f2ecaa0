"""Long-running parts and use cases, written against the ports."""
