"""The pure core: validation, encoding, the status machine. Imports no I/O."""
