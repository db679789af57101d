"""Pipeline stages with partial tensor parallelism (ExeGPT §4, control variable T_P).

`tp_gpus` of the `num_gpus` GPUs form TP groups of `tp_degree`; every other GPU is a TP-1
stage. A pipeline therefore has (num_gpus - tp_gpus) + tp_gpus / tp_degree stages. Layers
are spread so that stages take equal time (a TP stage is faster per layer and gets more
layers); the expected-value model keeps fractional layer counts, memory rounds them up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from harness.cost_model.base import CostModel, mixed_layer_from_phases, stage_decode_layer
from harness.cost_model.memory import StageShard
from harness.errors import UserError
from harness.specs.models import ModelSpec


@dataclass(frozen=True, slots=True)
class Stage:
    tp_degree: int
    encoder_layers: float
    decoder_layers: float
    first: bool
    last: bool

    def shard(self) -> StageShard:
        return StageShard(math.ceil(self.encoder_layers - 1e-9), math.ceil(self.decoder_layers - 1e-9),
                          self.tp_degree, embeddings=self.first or self.last)


def stage_degrees(num_gpus: int, tp_degree: int, tp_gpus: int) -> list[int]:
    if tp_gpus % tp_degree or tp_gpus > num_gpus:
        raise UserError(f"tp_gpus: {tp_gpus} must be a multiple of tp_degree={tp_degree} and <= {num_gpus}")
    return [tp_degree] * (tp_gpus // tp_degree) + [1] * (num_gpus - tp_gpus)


@lru_cache(maxsize=4096)
def _speed(cm: CostModel, model: ModelSpec, tp: int) -> float:
    """Relative layer throughput at TP `tp` (balancing weight), at a mid-size decode step."""
    return 1.0 / cm.decode_layer(model, 32, 256, tp).total_s


def build_pipeline(cm: CostModel, model: ModelSpec, degrees: list[int], encoder_layers: int,
                   decoder_layers: int) -> tuple[Stage, ...]:
    """Stages with layers in proportion to their speed. Equal stages are one shared object,
    so per-stage work is done once per distinct stage (`pipelined`); the same layout is the
    same objects across plans, so stage times are memoised across a whole search."""
    return _build_pipeline(cm, model, tuple(degrees), encoder_layers, decoder_layers)


@lru_cache(maxsize=4096)
def _build_pipeline(cm: CostModel, model: ModelSpec, degrees: tuple[int, ...], encoder_layers: int,
                    decoder_layers: int) -> tuple[Stage, ...]:
    speeds = [_speed(cm, model, d) for d in degrees]
    total = sum(speeds)
    n = len(degrees)
    made: dict[tuple, Stage] = {}
    out = []
    for i, (d, s) in enumerate(zip(degrees, speeds, strict=True)):
        key = (d, s, i == 0, i == n - 1)
        if key not in made:
            made[key] = Stage(d, encoder_layers * s / total, decoder_layers * s / total, i == 0, i == n - 1)
        out.append(made[key])
    return tuple(out)


def _crosses_node(cm: CostModel, stage_index: int, degrees: list[int]) -> bool:
    gpu_index = sum(degrees[: stage_index + 1])
    return gpu_index % cm.cluster.gpus_per_node == 0 and gpu_index < cm.cluster.num_gpus


@lru_cache(maxsize=1 << 16)
def stage_encode_s(cm: CostModel, model: ModelSpec, st: Stage, batch: float, seq_len: float) -> float:
    """One stage processing an encode (micro-)batch: its encoder layers, or its share of the
    decoder-only stack in prefill; T5 decoder stages also project cross K/V."""
    if batch <= 0:
        return 0.0
    b = max(1, round(batch))
    t = 0.0
    if model.is_encoder_decoder:
        t += st.encoder_layers * cm.encode_layer(model, b, seq_len, st.tp_degree).total_s
        t += st.decoder_layers * cm.cross_kv_s(model, b, seq_len, st.tp_degree)
    else:
        t += st.decoder_layers * cm.encode_layer(model, b, seq_len, st.tp_degree).total_s
        if st.last:
            t += cm.lm_head_s(model, b, st.tp_degree)
    if not st.last:
        t += cm.p2p_s(b * seq_len * model.hidden_size * model.dtype_bytes)
    return t


@lru_cache(maxsize=1 << 18)
def stage_decode_s(cm: CostModel, model: ModelSpec, st: Stage, batch: float, context_len: float,
                   input_len: float) -> float:
    """One stage advancing a decode (micro-)batch by one token."""
    if batch <= 0 or st.decoder_layers <= 0:
        return 0.0
    b = max(1, round(batch))
    piped = st.decoder_layers < model.num_decoder_layers      # a neighbour stage holds the rest
    t = st.decoder_layers * stage_decode_layer(cm, model, b, context_len, st.tp_degree, input_len, piped).total_s
    if st.last:
        t += cm.lm_head_s(model, b, st.tp_degree)
    else:
        t += cm.p2p_s(b * model.hidden_size * model.dtype_bytes)
    return t


@dataclass(frozen=True, slots=True)
class Pipelined:
    period_s: float       # all micro-batches advance one step (steady state)
    latency_s: float      # first micro-batch in -> last micro-batch out
    drain_s: float        # the stages after the bottleneck, still busy with the last one


def distinct(stages: tuple[Stage, ...]) -> list[Stage]:
    """The distinct stage objects of a pipeline (equal stages are shared: `build_pipeline`)."""
    return [st for st, _ in _groups(stages)]


_GROUPS: dict[int, tuple] = {}


def _groups(stages: tuple[Stage, ...]) -> tuple[tuple[Stage, int], ...]:
    """(stage, count) per distinct stage object, memoised per pipeline object."""
    hit = _GROUPS.get(id(stages))
    if hit is not None and hit[0] is stages:
        return hit[1]
    counts: dict[int, list] = {}
    for st in stages:
        counts.setdefault(id(st), [st, 0])[1] += 1
    groups = tuple((st, n) for st, n in counts.values())
    if len(_GROUPS) > 65536:
        _GROUPS.clear()
    _GROUPS[id(stages)] = (stages, groups)       # keeps `stages` alive, so its id stays unique
    return groups


def pipelined(stage_s, stages: tuple[Stage, ...], batch: int, micro_batches: int) -> Pipelined:
    """A batch in m = min(batch, micro_batches) micro-batches through `stages`, with stage
    times t_i of the mean micro-batch (§3): period max(m * max t_i, sum t_i), latency
    sum t_i + (m - 1) max t_i. Micro-batches hold whole sequences (sizes floor/ceil of
    batch/m); `stage_s(stage, size)` is linear between whole sizes, so m * t_i is exactly
    the stage's busy time over the unequal micro-batches. Rounding batch/m to one whole size
    instead made the encode period a staircase (B_E 3 cost as 4, 5 as 4): throughput was
    not monotone in B_E and branch-and-bound missed optima."""
    batch = max(1, int(batch))
    m = max(1, min(batch, micro_batches))
    q, r = divmod(batch, m)
    frac = r / m
    total, slowest = 0.0, 0.0
    for st, count in _groups(stages):
        t = stage_s(st, q) if not r else (1 - frac) * stage_s(st, q) + frac * stage_s(st, q + 1)
        total += count * t
        slowest = max(slowest, t)
    return Pipelined(max(m * slowest, total), total + (m - 1) * slowest, total - slowest)


_DECODE_MEMO: dict[tuple, tuple] = {}
_ENCODE_MEMO: dict[tuple, tuple] = {}
_ITER_TABLES: dict[tuple, tuple] = {}


@dataclass(frozen=True, slots=True)
class PipelineCosts:
    """StepCosts of an encode pipeline and a decode pipeline (the same one for FT and RRA).

    A batch is split into micro-batches that flow through the stages: with m micro-batches
    and stage times t_i (per micro-batch), all m advance one step in max(m * max t_i, sum t_i)
    (ExeGPT §3: 1 encode + 3 decode GPUs, two tokens take 7 stage-times without decoder
    micro-batches and 3 2/3 with three).
    """

    cm: CostModel
    model: ModelSpec
    encode_stages: tuple[Stage, ...]
    decode_stages: tuple[Stage, ...]
    decode_micro_batches: int
    kv_senders: int = 0                  # WAA: GPUs whose KV caches move via host memory
    encode_micro_batches: int = 0        # prefill micro-batches (DeepSpeed-Inference's hybrid
                                         # schedule, dsi.py); 0: one per encode stage (as before)

    @property
    def encode_projects_cross_kv(self) -> bool:
        """WAA on the CPU runner with T5: the encode worker projects every decoder layer's
        cross K/V (the hand-over carries them, `kv_transfer_s`) after its encoder stack
        (`CostModel.cross_kv_on_encoder`; GPU cost models: not modelled, waa.py)."""
        return (self.kv_senders > 0 and self.model.is_encoder_decoder
                and bool(getattr(self.cm, "cross_kv_on_encoder", False)))

    def _encode(self, batch: int, seq_len: float) -> Pipelined:
        # Memoised like `_decode`: a replay prices ~10^6 prefills of few distinct shapes.
        stages = self.encode_stages
        key = (id(stages), id(self.cm), self.kv_senders, self.encode_micro_batches, batch, seq_len)
        hit = _ENCODE_MEMO.get(key)
        if hit is not None and hit[0] is stages:
            return hit[1]
        out = self._encode_uncached(batch, seq_len)
        if len(_ENCODE_MEMO) > (1 << 20):
            _ENCODE_MEMO.clear()
        _ENCODE_MEMO[key] = (stages, out)
        return out

    def _encode_uncached(self, batch: int, seq_len: float) -> Pipelined:
        cross = self.model.num_decoder_layers if self.encode_projects_cross_kv else 0

        def stage(st: Stage, b: float) -> float:
            t = stage_encode_s(self.cm, self.model, st, b, seq_len)
            if cross and st.last and b > 0:
                t += cross * self.cm.cross_kv_s(self.model, max(1, round(b)), seq_len, st.tp_degree)
            return t
        return pipelined(stage, self.encode_stages, batch, self.encode_micro_batches or len(self.encode_stages))

    def self_context_len(self, context_len: float, input_len: float) -> float:
        """StepCosts count a sequence's context as input + generated tokens; the cost model's
        `context_len` (`decode_layer`, `kv_copy_s`) is the self-attention cache
        (`ModelSpec.self_cache_len`), at least one token."""
        return max(1.0, self.model.self_cache_len(context_len, input_len))

    def _decode(self, batch: int, ctx: float, inp: float) -> Pipelined:
        # Memoised per layout object (layouts are shared across plans: `build_pipeline`), so
        # a search pays once per (layout, batch) for the many iterations of many plans.
        stages, m = self.decode_stages, self.decode_micro_batches
        if not self.model.is_encoder_decoder:
            inp = 0          # read by cross-attention only: one memo entry per (batch, context)
        key = (id(stages), id(self.cm), m, batch, ctx, inp)
        hit = _DECODE_MEMO.get(key)
        if hit is not None and hit[0] is stages:
            return hit[1]
        own = self.self_context_len(ctx, inp)
        out = pipelined(lambda st, b: stage_decode_s(self.cm, self.model, st, b, own, inp), stages, batch, m)
        if len(_DECODE_MEMO) > (1 << 20):
            _DECODE_MEMO.clear()
        _DECODE_MEMO[key] = (stages, out)        # keeps `stages` alive, so its id stays unique
        return out

    def encode_s(self, batch: int, mean_input_len: float) -> float:
        return self._encode(batch, mean_input_len).latency_s

    def encode_period_s(self, batch: int, mean_input_len: float) -> float:
        return self._encode(batch, mean_input_len).period_s

    def decode_iter_s_many(self, batches: np.ndarray, ctx: float, inp: float) -> np.ndarray:
        """`decode_iter_s` of every batch size in `batches` (ints >= 0; 0 costs 0), from a
        per-layout table extended as larger batches are asked for."""
        stages = self.decode_stages
        key = (id(stages), id(self.cm), self.decode_micro_batches, ctx, inp)
        hit = _ITER_TABLES.get(key)
        table = hit[1] if hit is not None and hit[0] is stages else np.zeros(1)
        top = int(batches.max()) if len(batches) else 0
        if top >= len(table):                     # NaN: not computed yet
            table = np.concatenate([table, np.full(top + 1 - len(table), np.nan)])
            if len(_ITER_TABLES) > 65536:
                _ITER_TABLES.clear()
            _ITER_TABLES[key] = (stages, table)
        out = table[batches]
        if np.isnan(out).any():
            for b in np.unique(batches[np.isnan(out)]):
                table[b] = self._decode(int(b), ctx, inp).period_s
            out = table[batches]
        return out

    def decode_iter_s(self, batch: int, mean_context_len: float, mean_input_len: float) -> float:
        return self._decode(batch, mean_context_len, mean_input_len).period_s if batch > 0 else 0.0

    def decode_drain_s(self, batch: int, mean_context_len: float, mean_input_len: float) -> float:
        return self._decode(batch, mean_context_len, mean_input_len).drain_s if batch > 0 else 0.0

    def kv_copy_s(self, batch: int, context_len: float, mean_input_len: float, kind: str = "compact") -> float:
        """The decode stages rewrite the caches of `batch` sequences of `context_len` cached
        tokens (compaction or join; `CostModel.kv_copy_s`), each stage its own layers, in
        parallel: the slowest stage's time."""
        copy = getattr(self.cm, "kv_copy_s", None)     # a cost model without it: in place, 0
        if batch <= 0 or copy is None:
            return 0.0
        own = self.self_context_len(context_len, mean_input_len)
        return max(st.decoder_layers * copy(self.model, batch, own, st.tp_degree, mean_input_len, kind)
                   for st in distinct(self.decode_stages))

    @property
    def kv_receive_blocks(self) -> bool:
        """WAA hand-over on the decoder's critical path: the CPU runner's gloo receive blocks
        the decode worker while the bytes move; the paper's runtime copies through host
        memory asynchronously (ExeGPT §3), overlapped with decoding (GPU cost models)."""
        return bool(getattr(self.cm, "kv_receive_blocks", False))

    def kv_transfer_s(self, batch: int, mean_input_len: float) -> float:
        if self.kv_senders <= 0:
            return 0.0
        per_token = self.model.kv_bytes_per_token()       # self-attn KV of the prompt (T5: cross K/V)
        return self.cm.kv_transfer_s(batch * mean_input_len * per_token / self.kv_senders)

    # ---- chunked prefill (Sarathi-Serve / ORCA hybrid iterations) ---------------------------
    def mixed_iter_s(self, decode_batch: int, mean_context_len: float, mean_input_len: float,
                     chunk_tokens: int, chunk_context_len: float) -> float:
        """One iteration of the decode pipeline in which `decode_batch` sequences decode one
        token and one prompt prefills `chunk_tokens` tokens after `chunk_context_len` earlier
        ones, in the same forward (`CostModel.mixed_layer`: fused GEMMs). chunk_tokens 0 is
        `decode_iter_s` exactly; decode_batch 0 with chunk_context_len 0 is a prefill of one
        prompt of chunk_tokens tokens through the decode stages (`encode_s(1, chunk_tokens)`
        where the stages are the same). Memoised on whole-token context lengths (`mixed_step`)."""
        if chunk_tokens <= 0:
            return self.decode_iter_s(decode_batch, mean_context_len, mean_input_len)
        key = (id(self.decode_stages), id(self.cm), self.decode_micro_batches, int(decode_batch),
               round(mean_context_len), round(mean_input_len), int(chunk_tokens), round(chunk_context_len))
        hit = _MIXED_MEMO.get(key)
        if hit is not None and hit[0] is self.decode_stages:
            return hit[1]
        out = mixed_step(self, *key[3:])
        if len(_MIXED_MEMO) > (1 << 20):
            _MIXED_MEMO.clear()
        _MIXED_MEMO[key] = (self.decode_stages, out)   # keeps the stages alive, so their id stays unique
        return out


_MIXED_MEMO: dict[tuple, tuple] = {}


def stage_mixed_s(cm: CostModel, model: ModelSpec, st: Stage, decode_batch: int, context_len: float,
                  chunk_tokens: int, chunk_context_len: float) -> float:
    """One stage advancing a hybrid micro-batch: its layers (`CostModel.mixed_layer`, or
    base.mixed_layer_from_phases for a model without one); the last stage samples the decode
    batch and one token of the chunk (conservative: a chunk that does not end its prompt
    samples nothing in vLLM/Sarathi), the others send every token's activations on."""
    if st.decoder_layers <= 0:
        return 0.0
    mixed = getattr(cm, "mixed_layer", None)
    args = (model, decode_batch, context_len, chunk_tokens, chunk_context_len, st.tp_degree)
    layer = mixed(*args) if mixed is not None else mixed_layer_from_phases(cm, *args)
    t = st.decoder_layers * layer.total_s
    if st.last:
        return t + cm.lm_head_s(model, decode_batch + 1, st.tp_degree)
    return t + cm.p2p_s((decode_batch + chunk_tokens) * model.hidden_size * model.dtype_bytes)


def mixed_step(costs: PipelineCosts, decode_batch: int, ctx: float, inp: float, chunk_tokens: int,
               chunk_ctx: float) -> float:
    """`pipelined` with one hybrid micro-batch: the decode batch in m = min(batch,
    micro-batches) micro-batches (sizes floor/ceil), the chunk joining one of the smaller
    ones. Period = max(the busiest stage's time over all m, one micro-batch's trip through
    all stages): with equal micro-batches this is `pipelined`'s max(m * max t_i, sum t_i)."""
    cm, model = costs.cm, costs.model
    own = costs.self_context_len(ctx, inp)
    m = max(1, min(decode_batch, costs.decode_micro_batches))
    if m == 1:      # one micro-batch: its trip through the stages (a hybrid stage >= its decode)
        return sum(count * stage_mixed_s(cm, model, st, decode_batch, own, chunk_tokens, chunk_ctx)
                   for st, count in _groups(costs.decode_stages))
    q, r = divmod(decode_batch, m)
    busiest, trip_mixed, trip_decode = 0.0, 0.0, 0.0
    for st, count in _groups(costs.decode_stages):
        small = stage_decode_s(cm, model, st, q, own, inp)
        big = stage_decode_s(cm, model, st, q + 1, own, inp) if r else 0.0
        hybrid = stage_mixed_s(cm, model, st, q, own, chunk_tokens, chunk_ctx)
        busiest = max(busiest, r * big + (m - r - 1) * small + hybrid)
        trip_mixed += count * hybrid
        trip_decode += count * ((1 - r / m) * small + (r / m) * big)
    return max(busiest, trip_mixed, trip_decode)
