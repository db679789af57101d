"""Real execution of a schedule (ExeGPT §2 XRunner) on a mini-cluster of worker processes:
our own torch engine (harness.engine) and the ctranslate2 static-batch baseline."""
