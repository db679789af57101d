"""Console entry points (`harness <command> [overrides...]`); the only code that writes under `runs/`."""
