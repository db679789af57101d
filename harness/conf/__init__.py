"""The Hydra config tree, shipped as package data and found as `pkg://harness.conf`."""
