"""Stand-alone simulators of the gateway's external peers, for tests and benchmarks."""
