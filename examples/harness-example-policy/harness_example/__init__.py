"""Example exegpt-harness plugin: the refill-threshold policy (policy.py) and its configs (conf/)."""
