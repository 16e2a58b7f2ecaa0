"""Provider adapters: each implements smsgw.ports.SendPort and nothing else."""
