"""Our torch engine against the FT-equivalent engine (ctranslate2) at the same batch, precision
and cores, and where the difference in their tokens comes from (issue 20, point 4).

Both engines run FT semantics (ExeGPT §1, §7): batches of B requests in order, every sequence
generated to its batch's longest output, EOS suppressed. Each measurement runs in a fresh
process (`isolated`): torch and ctranslate2 each bring an OpenMP runtime, and neither run
inherits the other's thread pools, allocator state or warm caches. Rounds alternate the
engines, so the ratio of each round compares two runs minutes apart at most, and the median
over rounds is reported.

Tokens are compared with HF `generate` in float32 (greedy, `min_new_tokens = max_new_tokens`,
one prompt at a time: no padding enters the reference), the same weights. Where two float32
engines disagree, `divergence` replays the common prefix in float64 and reports the gap
between the two tokens' logits at the first differing step beside float32's own error of the
logits there: a gap below that error is a near-tie that rounding decides, not a defect.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass

import numpy as np

from harness.runner.ct2 import batch_lengths, run_static
from harness.specs.models import ModelSpec
from harness.workload.streams import Requests


@dataclass(frozen=True, slots=True)
class StaticRun:
    engine: str                      # "torch" (ours, harness.engine) | "ctranslate2"
    threads: int
    wall_s: float
    throughput_seq_s: float
    tokens: list[list[int]]          # request order, each truncated to its output length


def torch_static(spec: ModelSpec, prompts: list[list[int]], reqs: Requests, batch_size: int,
                 threads: int, seed: int = 0) -> StaticRun:
    """Our engine (`harness.engine.stage.generate`, the runner's layer code) in this process."""
    import torch

    from harness.engine.stage import generate
    from harness.engine.weights import load_weights
    torch.set_num_threads(threads)
    w = load_weights(spec, seed)
    outs: list[list[int]] = []
    t0 = time.perf_counter()
    for lo, n in zip(range(0, len(prompts), batch_size), batch_lengths(reqs, batch_size), strict=True):
        batch = prompts[lo:lo + batch_size]
        outs += generate(w, batch, [n] * len(batch))
    wall = time.perf_counter() - t0
    return StaticRun("torch", threads, wall, len(prompts) / wall,
                     [o[:int(k)] for o, k in zip(outs, reqs.output_len, strict=True)])


def ct2_static(spec: ModelSpec, model_dir, prompts: list[list[int]], reqs: Requests, batch_size: int,
               threads: int) -> StaticRun:
    r = run_static(spec, model_dir, prompts, reqs, batch_size, "float32", threads=threads)
    return StaticRun("ctranslate2", threads, r.wall_s, r.throughput_seq_s, r.tokens)


def _child(q, fn, args) -> None:
    try:
        q.put(("ok", fn(*args)))
    except Exception as e:  # reported to the parent as one line
        q.put(("error", f"{type(e).__name__}: {e}"))


def isolated(fn, *args, timeout_s: float = 600.0):
    """`fn(*args)` in a fresh (spawned) process: its own OpenMP pools, nothing warm but what
    `fn` warms itself. Raises RuntimeError with the child's one-line error."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q, fn, args))
    p.start()
    try:
        status, out = q.get(timeout=timeout_s)
    finally:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
    if status != "ok":
        raise RuntimeError(f"engine run in a child process failed: {out}")
    return out


def hf_tokens(spec: ModelSpec, prompts: list[list[int]], lengths: list[int], seed: int = 0,
              dtype: str = "float32") -> list[list[int]]:
    """HF `generate`, greedy, exactly `lengths[i]` new tokens (EOS suppressed by min_new_tokens)."""
    import torch

    from harness.engine.weights import build_hf_model
    hf = build_hf_model(spec, seed).to(getattr(torch, dtype))
    out = []
    with torch.no_grad():
        for p, n in zip(prompts, lengths, strict=True):
            kw = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, num_beams=1)
            if spec.family == "t5":
                kw["decoder_start_token_id"] = _decoder_start(hf)
            g = hf.generate(torch.tensor([p]), **kw)[0].tolist()
            out.append(g[1:] if spec.family == "t5" else g[len(p):])
    return out


def _decoder_start(hf) -> int:
    """T5's first decoder input (its pad id where the config names no start token)."""
    tid = getattr(hf.config, "decoder_start_token_id", None)
    return int(tid if tid is not None else hf.config.pad_token_id)


def _logits(hf, spec: ModelSpec, prompt: list[int], prefix: list[int]):
    """Next-token logits after `prompt` and the generated `prefix` (EOS masked like generate)."""
    import torch
    with torch.no_grad():
        if spec.family == "t5":
            dec = torch.tensor([[_decoder_start(hf), *prefix]])
            out = hf(input_ids=torch.tensor([prompt]), decoder_input_ids=dec).logits[0, -1]
        else:
            out = hf(input_ids=torch.tensor([prompt + prefix])).logits[0, -1]
    out = out.clone()
    out[hf.config.eos_token_id] = float("-inf")
    return out


def divergence(spec: ModelSpec, prompts: list[list[int]], a: list[list[int]], b: list[list[int]],
               seed: int = 0) -> list[dict]:
    """For every sequence where `a` and `b` differ: the first differing step, the float64 logit
    gap between the two chosen tokens there, and float32's error of those logits (max |logit32 -
    logit64| over the vocabulary at that step), plus the float64 top-2 gap."""
    import copy

    import torch

    from harness.engine.weights import build_hf_model
    differ = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if not differ:
        return []
    hf32 = build_hf_model(spec, seed)
    hf64 = copy.deepcopy(hf32).double()
    rows = []
    for i in differ:
        x, y = a[i], b[i]
        j = next(k for k, (s, t) in enumerate(zip(x, y, strict=False)) if s != t)
        l64 = _logits(hf64, spec, prompts[i], x[:j])
        l32 = _logits(hf32, spec, prompts[i], x[:j]).double()
        top = torch.topk(l64, 2).values
        fin = torch.isfinite(l64)
        rows.append({"request": i, "step": j, "gap_a_b_f64": float(abs(l64[x[j]] - l64[y[j]])),
                     "top2_gap_f64": float(top[0] - top[1]),
                     "f32_logit_err": float((l32[fin] - l64[fin]).abs().max()),
                     "logit_scale": float(l64[fin].abs().max())})
    return rows


OP_CLASSES = {"gemm": ("aten::mm", "aten::addmm", "aten::bmm"), "attention": ("aten::_scaled_dot_product",),
              "cache": ("aten::copy_", "aten::cat", "aten::index", "aten::index_copy_")}
BANDWIDTH_PROBE_BYTES = 256 * 2**20     # larger than any cache of this machine's cores' share


def read_bandwidth_b_s(repeats: int = 5) -> float:
    """Streaming read bandwidth of this process's core: sum over a 256 MiB float32 buffer."""
    import torch
    big = torch.ones(BANDWIDTH_PROBE_BYTES // 4)
    big.sum()
    t = time.perf_counter()
    for _ in range(repeats):
        big.sum()
    return repeats * BANDWIDTH_PROBE_BYTES / (time.perf_counter() - t)


def step_profile(spec: ModelSpec, batch: int, context: int, threads: int, seed: int = 0,
                 steps: int = 100) -> dict:
    """One decoding step of the whole model (every decoder layer + LM head) at (batch, cached
    context): its median time, the bytes it must read (weights + KV cache), the time those
    bytes take at the measured read bandwidth (the memory-bandwidth floor), and the share of
    the step's CPU time by op class (torch.profiler: gemm, attention, cache writes, other)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from harness.engine import layers as L
    from harness.engine.stage import StageModel, StageSlice
    from harness.engine.weights import load_weights
    torch.set_num_threads(threads)
    w = load_weights(spec, seed)
    S = StageModel(w, StageSlice(0, len(w.encoder), 0, len(w.decoder)))
    prompts = [[3] * (context + 1)] * batch
    ids = list(range(batch))
    x, st0 = S.encode(S.embed_prompts(prompts), prompts, ids)
    if S.t5:
        st0 = S.cross_state(x, S.prompt_lengths(prompts), ids)
    toks = S.first_inputs(prompts)
    st0.k, st0.v = [L.reserve(t) for t in st0.k], [L.reserve(t) for t in st0.v]
    rewind = st0.rewinder()

    def step() -> None:
        rewind()
        S.tokens(S.decode(st0, toks))
    for _ in range(10):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(20):
            step()
    self_us = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(self_us.values()) or 1.0
    share = {c: sum(v for k, v in self_us.items() if k.startswith(names)) / total for c, names in OP_CLASSES.items()}
    share["other"] = 1.0 - sum(share.values())
    weight_b = sum(t.numel() * t.element_size() for lay in S.dec for t in _layer_tensors(lay)) + w.tok_emb.numel() * 4
    rewind()
    kv_b = sum(t.numel() * t.element_size() for t in (*st0.k, *st0.v, *st0.ck, *st0.cv))
    bw = read_bandwidth_b_s()
    step_s = float(np.median(times))
    return {"batch": batch, "context": context, "threads": threads, "step_s": step_s,
            "weight_bytes": weight_b, "kv_bytes": kv_b, "read_bandwidth_gb_s": bw / 1e9,
            "bandwidth_floor_s": (weight_b + kv_b) / bw, "over_floor": step_s * bw / (weight_b + kv_b),
            **{f"share_{k}": v for k, v in share.items()}}


def _layer_tensors(lay) -> list:
    a, m = lay.attn, lay.mlp
    ts = [a.wq, a.wk, a.wv, a.wo, m.w1, m.w2]
    if lay.cross is not None:
        ts += [lay.cross.wq, lay.cross.wk, lay.cross.wv, lay.cross.wo]
    return ts
