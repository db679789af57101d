"""Pieces the iteration-level policies share (ORCA, vLLM, Sarathi-Serve, DistServe).

- `Replica`: one model instance (TP inside a node x PP stages) and its paged KV memory;
  the cluster runs `num_gpus // (tp * pp)` data-parallel replicas, requests dealt to them
  round-robin in arrival order (the usual front-end of a vLLM deployment).
- `BlockTable`: vLLM's block accounting (Kwon et al., SOSP'23 §4.3) in O(1) per iteration: a
  request holding `tokens` KV tokens holds ceil(tokens / block_size) blocks, and a decoding
  iteration needs one new block for every live request whose tokens fill their last block
  exactly; requests are bucketed by (tokens - iteration) mod block_size, so the count is one
  lookup.
- `Lanes`: the replicas' clocks; the program always advances the replica that is furthest
  behind, so every executor call starts at or after the previous one on its replica.
Memory per GPU: weights of the stage + one forward's activations over the token budget +
the KV blocks that fit in what is left (harness/cost_model/memory.py; the 0.9 usable
fraction is vLLM's default `gpu_memory_utilization`).
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

from harness.cost_model.engines import with_engine
from harness.cost_model.memory import activation_bytes, kv_cache_bytes, usable_bytes, weight_bytes
from harness.policies.base import Context, Plan, Policy, infeasible
from harness.policies.common import tp_degrees
from harness.policies.pipeline import PipelineCosts, Stage, build_pipeline, distinct

WATERMARK = 0.01           # vLLM's block-manager watermark: free blocks kept back from prefills
BLOCK_SIZE = 16            # tokens per KV block: vLLM's default


@dataclass(frozen=True, slots=True)
class Replica:
    stages: tuple[Stage, ...]
    tp: int
    pp: int
    count: int               # data-parallel replicas on the cluster
    kv_tokens: int           # KV tokens one replica can hold (0: weights + activations do not fit)
    memory_per_gpu_bytes: float


def min_pipeline(ctx: Context, tp: int, budget_tokens: int, layers: tuple[int, int] | None = None) -> int:
    """Fewest pipeline stages (a power of two, GPUs permitting) at which one replica's
    weights and activations fit with room for KV (0: none fits)."""
    pp = 1
    while pp * tp <= ctx.cluster.num_gpus:
        if replica(ctx, tp, pp, budget_tokens, layers).kv_tokens > 0:
            return pp
        pp *= 2
    return 0


def replica(ctx: Context, tp: int, pp: int, budget_tokens: int, layers: tuple[int, int] | None = None,
            gpus: int | None = None) -> Replica:
    """A replica of TP `tp` x `pp` stages; `layers` = (encoder, decoder) layers it holds
    (default: the whole model); `gpus`: GPUs shared by its replicas (default: the cluster)."""
    m, cm = ctx.model, ctx.cost_model
    enc, dec = layers or (m.num_encoder_layers, m.num_decoder_layers)
    stages = build_pipeline(cm, m, [tp] * pp, enc, dec)
    free = min(usable_bytes(ctx.cluster.gpu) - weight_bytes(m, st.shard())
               - activation_bytes(m, budget_tokens, tp) for st in distinct(stages))
    per_token = max(kv_cache_bytes(m, st.shard(), 1.0) for st in distinct(stages))
    kv_tokens = int(free // per_token) if free > 0 and per_token > 0 else 0
    used = usable_bytes(ctx.cluster.gpu) - max(0.0, free)
    return Replica(stages, tp, pp, (gpus or ctx.cluster.num_gpus) // (tp * pp), kv_tokens, used)


def layout_error(ctx: Context, tp: int, pp: int) -> str:
    """Why TP `tp` x PP `pp` cannot be laid out here ("" when it can)."""
    m = ctx.model
    if tp not in tp_degrees(ctx):
        return f"tp_degree: {tp} not one of {tp_degrees(ctx)} (divides heads and FFN, inside a node)"
    if pp < 1 or tp * pp > ctx.cluster.num_gpus:
        return f"layout: TP {tp} x PP {pp} does not fit {ctx.cluster.num_gpus} GPUs"
    if m.num_decoder_layers < pp:
        return f"layout: {m.num_decoder_layers} decoder layers cannot fill {pp} stages"
    return ""


def costs(ctx: Context, stages: tuple[Stage, ...], cm=None) -> PipelineCosts:
    """One replica's step times; PP stages overlap as PP micro-batches (vLLM's virtual engines)."""
    return PipelineCosts(cm or ctx.cost_model, ctx.model, stages, stages, decode_micro_batches=len(stages))


class BlockTable:
    """Paged KV blocks of one replica (module docstring). Token counts advance with the
    replica's iteration counter `it`: a request joined at iteration j with t tokens holds
    t + (it - j) tokens."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        self.num_blocks, self.bs = num_blocks, block_size
        self.used = 0
        self.it = 0
        self.offset: dict[int, int] = {}             # request -> tokens - it (insertion: admission order)
        self.residue = [0] * block_size               # requests per (offset mod block_size)

    def blocks(self, tokens: int) -> int:
        return -(-tokens // self.bs)

    def tokens(self, i: int) -> int:
        return self.offset[i] + self.it

    def fits(self, tokens: int, reserve: int = 0) -> bool:
        return self.used + self.blocks(tokens) + reserve <= self.num_blocks

    def admit(self, i: int, tokens: int) -> None:
        self.used += self.blocks(tokens)
        off = tokens - self.it
        self.offset[i] = off
        self.residue[off % self.bs] += 1

    def release(self, i: int) -> int:
        """Free request i's blocks; returns the tokens it held."""
        off = self.offset.pop(i)
        self.residue[off % self.bs] -= 1
        tokens = off + self.it
        self.used -= self.blocks(tokens)
        return tokens

    def needed(self) -> int:
        """New blocks the next decoding iteration needs (requests whose last block is full)."""
        return self.residue[(-self.it) % self.bs]

    def advance(self) -> None:
        """One decoding iteration: every live request gains a token."""
        self.used += self.needed()
        self.it += 1

    def newest(self) -> int:
        """The most recently admitted live request (vLLM preempts it first)."""
        return next(reversed(self.offset))


class Lanes:
    """Clocks of the replicas; `next()` is the one furthest behind that has work."""

    def __init__(self, count: int) -> None:
        self.heap = [(0.0, r) for r in range(count)]

    def pop(self) -> tuple[float, int]:
        return heapq.heappop(self.heap)

    def push(self, t: float, r: int) -> None:
        heapq.heappush(self.heap, (t, r))

    def __bool__(self) -> bool:
        return bool(self.heap)


def paged_plan(policy, ctx: Context, knobs: dict[str, int], forward_tokens: int, window: int,
               err: str = ""):
    """The plan of a one-pipeline paged-KV policy (vLLM, ORCA, Sarathi-Serve) from validated `knobs`
    (tp_degree, block_size, max_num_seqs): TP inside a node, the fewest stages whose GPUs
    hold the weights and the activations of one forward of `forward_tokens` tokens, KV blocks
    of `block_size` tokens in the rest, data-parallel replicas on the remaining GPUs.
    Infeasible, with the first reason (`err` first), when the layout fails, the block size
    does not divide the `window`-token context, or one replica cannot hold the longest
    request (the programs rely on that: a request alone always fits). Returns a `Plan`."""
    w = ctx.workload
    tp, bs = knobs["tp_degree"], knobs["block_size"]
    err = err or layout_error(ctx, tp, 1)
    if not err and window % bs:
        err = f"block_size: {bs} does not divide the {window}-token context window"
    pp = 0 if err else min_pipeline(ctx, tp, forward_tokens)
    if not err and not pp:
        err = f"memory: no pipeline of TP {tp} fits the weights and a {forward_tokens}-token forward"
    if err:
        return infeasible(policy.name, knobs, err, policy.kind)
    rep = replica(ctx, tp, pp, forward_tokens)
    blocks = rep.kv_tokens // bs
    longest = -(-(w.input.max + w.output.max) // bs)
    if blocks < longest:
        return infeasible(policy.name, knobs, f"memory: {blocks} KV blocks per replica hold less than the "
                          f"longest request ({longest} blocks)", policy.kind)
    seqs = knobs["max_num_seqs"]
    # the decoding batch memory sustains: max_num_seqs, or the blocks over a mean live request
    # (half its output generated); it sizes the discrete-event estimate's stream (des_requests)
    live = -(-round(w.input.mean + w.output.mean / 2) // bs)
    cap = max(1, min(seqs, blocks // live))
    return Plan(policy.name, policy.kind, tuple(sorted(knobs.items())), True, "", seqs, 1,
                ctx.sla.latency_output_len(w), max_decode_batch=cap, memory_per_gpu_bytes=rep.memory_per_gpu_bytes,
                num_stages=pp, costs=costs(ctx, rep.stages, with_engine(ctx.cost_model, policy.engine)),
                mode=ctx.mode, program=policy, engine=policy.engine,
                derived=(("replicas", rep.count), ("num_blocks", blocks), ("pp_degree", pp)))


class ReplicatedPolicy(Policy):
    """A policy whose plan is data-parallel replicas of one pipeline (vLLM, ORCA,
    Sarathi-Serve): one worker group per replica on the real runner."""

    def worker_groups(self, plan: Plan) -> dict[str, tuple]:
        return replica_groups(plan)

    def runner_support(self, plan: Plan) -> str:
        return replica_runner_support(plan)


def replica_groups(plan) -> dict[str, tuple]:
    """`Policy.worker_groups` of a replicated one-pipeline plan: one group per data-parallel
    replica ("all" when there is one; the programs' `r0`, `r1`, ...), each its stages."""
    reps = int(dict(plan.derived)["replicas"])
    stages = tuple(plan.costs.decode_stages)
    return {"all": stages} if reps == 1 else {f"r{r}": stages for r in range(reps)}


def replica_runner_support(plan) -> str:
    """`Policy.runner_support` of a replicated plan: the mini-cluster has one worker per GPU of
    the plan's cluster, so replicas beyond them cannot run ("" when they fit)."""
    cluster = getattr(getattr(plan.costs, "cm", None), "cluster", None)
    reps = int(dict(plan.derived)["replicas"])
    need = reps * sum(s.tp_degree for s in plan.costs.decode_stages)
    if cluster is not None and need > cluster.num_gpus:
        return f"{reps} replicas need {need} workers; the mini-cluster has {cluster.num_gpus}"
    return ""


class ReplicaQueues:
    """What the replicated paged-KV programs (vLLM, ORCA, Sarathi-Serve) share: requests dealt
    round-robin to the replicas in arrival order, each replica's waiting queue (preempted
    requests at its head), block table and clock (`Lanes`), and the tokens a preempted
    request must recompute."""

    def __init__(self, plan, x) -> None:
        d = dict(plan.derived)
        self.reps, self.blocks = int(d["replicas"]), int(d["num_blocks"])
        bs = dict(plan.knobs)["block_size"]
        self.inp, self.arr, self.n = x.reqs.input_len.tolist(), x.reqs.arrival_s.tolist(), len(x.reqs)
        self.groups = ["all"] if self.reps == 1 else [f"r{r}" for r in range(self.reps)]
        self.queues = [deque() for _ in range(self.reps)]
        self.tables = [BlockTable(self.blocks, bs) for _ in range(self.reps)]
        self.nxt = list(range(self.reps))         # next new request of each replica
        self.resume: dict[int, int] = {}          # preempted request -> tokens to recompute
        self.reserve = int(WATERMARK * self.blocks)
        self.lanes = Lanes(self.reps)

    def turns(self, busy=None):
        """(t, r) of every step the replicas take, the one furthest behind first, its arrivals
        queued; a replica with nothing to do (no live request, none waiting, nothing `busy(r)`
        says it holds) waits for its next arrival. The caller pushes r's clock back."""
        while self.lanes:
            t, r = self.lanes.pop()
            self.arrivals(r, t)
            if not self.tables[r].offset and not self.queues[r] and not (busy and busy(r)):
                self.idle(r)
                continue
            yield t, r

    def arrivals(self, r: int, t: float) -> None:
        """Replica r's requests that have arrived by t join its queue."""
        q, nxt, arr = self.queues[r], self.nxt, self.arr
        while nxt[r] < self.n and arr[nxt[r]] <= t:
            q.append(nxt[r])
            nxt[r] += self.reps

    def idle(self, r: int) -> None:
        """Replica r has nothing to run: wake it at its next arrival (or retire it)."""
        if self.nxt[r] < self.n:
            self.lanes.push(self.arr[self.nxt[r]], r)

    def tokens(self, i: int) -> int:
        """Prompt tokens request i prefills: its prompt, or prompt + generated after preemption."""
        return self.resume.get(i, self.inp[i])

    def preempt_for(self, r: int, x, extra_blocks: int = 0) -> None:
        """vLLM's preemption by recompute: while the next iteration's new blocks (plus
        `extra_blocks`) do not fit, the newest live request of replica r leaves, its KV freed."""
        bt, q = self.tables[r], self.queues[r]
        while bt.used + extra_blocks + bt.needed() > self.blocks and len(bt.offset) > 1:
            v = bt.newest()
            self.resume[v] = bt.release(v)
            x.preempt(self.groups[r], [v])
            q.appendleft(v)

