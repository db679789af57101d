"""Config tree of the example (pkg://harness_example.conf): policy/, model/, experiment/."""
