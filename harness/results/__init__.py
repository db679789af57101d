"""Run records with provenance, the resumable atomic store, and aggregation to parquet."""

from harness.results.record import config_hash, provenance
from harness.results.store import ResultStore

__all__ = ["ResultStore", "config_hash", "provenance"]
