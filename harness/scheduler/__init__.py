"""XScheduler: constraint-aware schedule search (ExeGPT §5), bounds (§7), studies (§8)."""

from harness.scheduler.search import SearchResult, find_schedule, search_policy

__all__ = ["SearchResult", "find_schedule", "search_policy"]
