"""Pieces every policy shares: TP degrees that are legal here, memory checks of a layout."""

from __future__ import annotations

from functools import lru_cache

from harness.cost_model.memory import (
    MemoryUse,
    activation_bytes,
    kv_cache_bytes,
    usable_bytes,
    weight_bytes,
)
from harness.policies.base import Context
from harness.policies.pipeline import Stage
from harness.specs.models import ModelSpec


def tp_degrees(ctx: Context) -> list[int]:
    """Powers of two that divide heads and FFN and fit in one node (TP stays inside a node)."""
    return list(_tp_degrees(ctx.model, ctx.cluster.gpus_in_node))


@lru_cache(maxsize=256)
def _tp_degrees(m: ModelSpec, gpus_in_node: int) -> tuple[int, ...]:
    out, d = [], 1
    while d <= gpus_in_node:
        if m.num_heads % d == 0 and m.ffn_size % d == 0:
            out.append(d)
        d *= 2
    return tuple(out)


def stage_memory(ctx: Context, st: Stage, kv_tokens: float, cross_tokens: float,
                 active_tokens: float, weight_copies: int = 1) -> MemoryUse:
    """Weights, KV cache and one layer's activations on one GPU of stage `st`."""
    shard = st.shard()
    return MemoryUse(weight_copies * weight_bytes(ctx.model, shard),
                     kv_cache_bytes(ctx.model, shard, kv_tokens, cross_tokens),
                     activation_bytes(ctx.model, active_tokens, st.tp_degree))


def stage_memory_bytes(ctx: Context, st: Stage, kv_tokens: float, cross_tokens: float,
                       active_tokens: float, weight_copies: int = 1) -> float:
    """Weights + KV cache + one layer's activations on one GPU of stage `st`."""
    return stage_memory(ctx, st, kv_tokens, cross_tokens, active_tokens, weight_copies).total_bytes


def memory_check(ctx: Context, per_gpu_bytes: float) -> str:
    cap = usable_bytes(ctx.cluster.gpu)
    if per_gpu_bytes > cap:
        return (f"memory: {per_gpu_bytes / 2**30:.1f} GiB per GPU exceeds {cap / 2**30:.1f} GiB usable "
                f"on {ctx.cluster.gpu.name}")
    return ""
