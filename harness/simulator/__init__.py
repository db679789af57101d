"""Simulators: the paper's expected-value timeline and a per-request discrete-event engine."""
