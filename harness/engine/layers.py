"""Our own forward pass of T5 / OPT / GPT-2 layers, with an explicit KV cache we can compact,
join and hand between processes (ExeGPT §2 XRunner: early termination + KV compaction,
WAA KV transfer). The profiler times exactly these functions, so the profile and the runs
measure the same code.

Shapes: hidden [batch, tokens, hidden]; K/V [batch, local heads, slots, head_dim].
- Encoding is *packed*: the prompts of a batch are one sequence [1, T = sum of lengths]
  with a block-diagonal mask, so its cost follows the total tokens (B_E * mean input,
  as the simulator charges it) rather than B_E * the longest prompt.
- Decoding caches are *right-aligned*: a sequence's valid slots are the last ones of its
  row (`SeqState.valid`), so appending one slot per step is one concat for the whole batch,
  joining batches left-pads the shorter side, and compaction trims columns no row uses.
- Decoder-only prompts are prefilled without their last token, which is the input of the
  first decoding iteration: a query of output length S then takes exactly S decoding
  iterations, the simulator's accounting (harness/simulator/discrete_event.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from harness.engine.weights import OPT_POSITION_OFFSET, Attention, Layer, Norm, Weights

AllReduce = Callable[[torch.Tensor], None]
NEG_INF = float("-inf")


def no_allreduce(t: torch.Tensor) -> None:
    return None


def norm(x: torch.Tensor, n: Norm) -> torch.Tensor:
    if n.bias is None:   # T5: RMS norm, scale only
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + n.eps) * n.weight
    return F.layer_norm(x, (x.shape[-1],), n.weight, n.bias, n.eps)


def _heads(t: torch.Tensor, hd: int) -> torch.Tensor:           # [B, T, h*hd] -> [B, h, T, hd]
    b, s, _ = t.shape
    return t.view(b, s, -1, hd).transpose(1, 2)


def _merge(t: torch.Tensor) -> torch.Tensor:                     # [B, h, T, hd] -> [B, T, h*hd]
    b, h, s, hd = t.shape
    return t.transpose(1, 2).reshape(b, s, h * hd)


def _out(a: Attention, ctx: torch.Tensor, ar: AllReduce) -> torch.Tensor:
    o = F.linear(_merge(ctx), a.wo)
    ar(o)
    return o if a.bo is None else o + a.bo


def _mlp(lay: Layer, x: torch.Tensor, ar: AllReduce) -> torch.Tensor:
    m = lay.mlp
    h = F.linear(x, m.w1, m.b1)
    h = torch.relu(h) if m.act == "relu" else F.gelu(h, approximate="tanh")
    o = F.linear(h, m.w2)
    ar(o)
    return o if m.b2 is None else o + m.b2


# ---- T5 relative position bias (HF T5Attention._relative_position_bucket) -----------------
def _bucket(rel: torch.Tensor, bidirectional: bool, num_buckets: int = 32, max_distance: int = 128):
    out = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        out += (rel > 0).long() * num_buckets
        rel = rel.abs()
    else:
        rel = -torch.clamp(rel, max=0)
    max_exact = num_buckets // 2
    large = max_exact + (torch.log(rel.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    large = torch.clamp(large, max=num_buckets - 1)
    return out + torch.where(rel < max_exact, rel, large)


def rel_bias(table: torch.Tensor, rel: torch.Tensor, bidirectional: bool) -> torch.Tensor:
    """[..., q, k] relative positions -> additive bias [..., heads, q, k]."""
    return table[_bucket(rel, bidirectional)].movedim(-1, -3)


# ---- packed encoding (encoder layers / decoder-only prefill) ------------------------------
def packed_layout(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Segment id and position-in-segment of every token of a packed batch."""
    lens = torch.tensor(lengths, dtype=torch.long)
    seg = torch.repeat_interleave(torch.arange(len(lengths)), lens)
    starts = torch.cumsum(lens, 0) - lens
    return seg, torch.arange(int(lens.sum())) - starts[seg]


def packed_mask(w: Weights, seg: torch.Tensor, pos: torch.Tensor, causal: bool,
                dtype: torch.dtype) -> torch.Tensor:
    """Additive [1, 1|h, T, T] mask: same segment (and causal), plus T5's encoder bias."""
    allowed = seg[:, None] == seg[None, :]
    if causal:
        allowed &= pos[None, :] <= pos[:, None]
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, NEG_INF)[None, None]
    if w.family == "t5":
        mask = mask + rel_bias(w.enc_rel_bias, pos[None, :] - pos[:, None], True).to(dtype)[None]
    return mask


def full_block(w: Weights, lay: Layer, x: torch.Tensor, mask: torch.Tensor, ar: AllReduce):
    """One layer over a packed sequence; returns (x, k, v) (k, v: this layer's self-attn K/V)."""
    a, hd = lay.attn, w.head_dim
    h = norm(x, lay.ln1)
    q = _heads(F.linear(h, a.wq, a.bq), hd)
    k = _heads(F.linear(h, a.wk, a.bk), hd)
    v = _heads(F.linear(h, a.wv, a.bv), hd)
    ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=w.attn_scale)
    x = x + _out(a, ctx, ar)
    x = x + _mlp(lay, norm(x, lay.ln2), ar)
    return x, k, v


def embed_prompt(w: Weights, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    x = w.tok_emb[tokens]
    if w.pos_emb is not None:
        x = x + w.pos_emb[pos + (OPT_POSITION_OFFSET if w.family == "opt" else 0)]
    return x[None]


def unpack(t: torch.Tensor, lengths: list[int], right: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed [1, h, T, hd] -> padded [B, h, L, hd] (right- or left-aligned) + valid [B, L]."""
    b, n = len(lengths), max(max(lengths), 0)
    lens = torch.tensor(lengths, dtype=torch.long)
    seg, pos = packed_layout(lengths)
    col = pos + (n - lens[seg]) if right else pos
    out = t.new_zeros((b * n, t.shape[1], t.shape[3]))
    out.index_copy_(0, seg * n + col, t[0].transpose(0, 1))
    valid = torch.zeros(b * n, dtype=torch.bool)
    valid[seg * n + col] = True
    return out.view(b, n, t.shape[1], t.shape[3]).transpose(1, 2), valid.view(b, n)


# ---- decoding state ------------------------------------------------------------------------
class SeqState:
    """KV cache and positions of one group of sequences on one pipeline stage (mutable)."""

    def __init__(self, ids: list[int], k: list[torch.Tensor], v: list[torch.Tensor],
                 valid: torch.Tensor, pos: torch.Tensor, next_pos: torch.Tensor,
                 ck: list[torch.Tensor] | None = None, cv: list[torch.Tensor] | None = None,
                 cvalid: torch.Tensor | None = None) -> None:
        self.ids, self.k, self.v, self.valid, self.pos, self.next_pos = ids, k, v, valid, pos, next_pos
        self.ck, self.cv, self.cvalid = ck or [], cv or [], cvalid

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, rows: list[int]) -> SeqState:
        """Early termination + KV compaction (ExeGPT §2): keep `rows`, drop unused columns. The
        self caches are gathered into buffers with spare slots (`gather_slots`), so the next
        steps append in place instead of copying the compacted cache once more."""
        idx = torch.tensor(rows, dtype=torch.long)
        valid = self.valid[idx]
        used = valid.any(0).nonzero()
        lo = int(used[0]) if len(used) else valid.shape[1]
        sel = lambda ts, c0: [gather_slots(t, idx, c0) for t in ts]  # noqa: E731
        cvalid = self.cvalid[idx] if self.cvalid is not None else None
        clen = int(cvalid.sum(1).max()) if cvalid is not None and len(rows) else 0
        return SeqState([self.ids[i] for i in rows], sel(self.k, lo), sel(self.v, lo), valid[:, lo:],
                        self.pos[idx][:, lo:], self.next_pos[idx],
                        [t[idx][:, :, :clen] for t in self.ck], [t[idx][:, :, :clen] for t in self.cv],
                        cvalid[:, :clen] if cvalid is not None else None)

    @staticmethod
    def concat(a: SeqState, b: SeqState) -> SeqState:
        """Join two groups: self caches right-aligned (left-pad), cross caches left-aligned."""
        if not len(a):
            return b
        if not len(b):
            return a
        n = max(a.valid.shape[1], b.valid.shape[1])
        pad_l = lambda t, m: F.pad(t, (0, 0, m - t.shape[2], 0)) if t.dim() == 4 else F.pad(t, (m - t.shape[1], 0))  # noqa: E731
        k = [join_slots(x, y, n) for x, y in zip(a.k, b.k, strict=True)]
        v = [join_slots(x, y, n) for x, y in zip(a.v, b.v, strict=True)]
        valid = torch.cat((pad_l(a.valid, n), pad_l(b.valid, n)))
        pos = torch.cat((pad_l(a.pos, n), pad_l(b.pos, n)))
        ck = cv = cvalid = None
        if a.cvalid is not None:
            m = max(a.cvalid.shape[1], b.cvalid.shape[1])
            pad_r = lambda t: F.pad(t, (0, 0, 0, m - t.shape[2])) if t.dim() == 4 else F.pad(t, (0, m - t.shape[1]))  # noqa: E731
            ck = [torch.cat((pad_r(x), pad_r(y))) for x, y in zip(a.ck, b.ck, strict=True)]
            cv = [torch.cat((pad_r(x), pad_r(y))) for x, y in zip(a.cv, b.cv, strict=True)]
            cvalid = torch.cat((pad_r(a.cvalid), pad_r(b.cvalid)))
        return SeqState(a.ids + b.ids, k, v, valid, pos, torch.cat((a.next_pos, b.next_pos)), ck, cv, cvalid)

    def rewinder(self):
        """A function that puts this state back to its caches and positions of now (a profile
        point's repeats each append to the same cached tokens; the appended slots are rewritten)."""
        keep = (list(self.k), list(self.v), self.valid, self.pos, self.next_pos)

        def rewind() -> None:
            self.k, self.v = list(keep[0]), list(keep[1])
            self.valid, self.pos, self.next_pos = keep[2], keep[3], keep[4]
        return rewind

    def tensors(self) -> list[torch.Tensor]:
        """Everything a receiver needs, in a fixed order (WAA KV hand-over)."""
        out = [*self.k, *self.v, self.valid.to(torch.uint8), self.pos, self.next_pos]
        if self.cvalid is not None:
            out += [*self.ck, *self.cv, self.cvalid.to(torch.uint8)]
        return out


def empty_self_cache(w: Weights, num_layers: int, batch: int, dtype: torch.dtype):
    z = torch.zeros((batch, w.local_heads, 0, w.head_dim), dtype=dtype)
    return [z] * num_layers, [z] * num_layers


# ---- one decoding step -------------------------------------------------------------------
def embed_step(w: Weights, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    x = w.tok_emb[tokens]
    if w.pos_emb is not None:
        x = x + w.pos_emb[positions + (OPT_POSITION_OFFSET if w.family == "opt" else 0)]
    return x[:, None]


GROW_SLOTS = 32   # spare cache slots allocated when a cache buffer is full (amortised append)


def _buffer(like: torch.Tensor, rows: int, slots: int) -> torch.Tensor:
    """[rows, h, slots, hd] (uninitialised), a view of a buffer with GROW_SLOTS more slots."""
    return like.new_empty((rows, like.shape[1], slots + GROW_SLOTS, like.shape[3]))[:, :, :slots]


def _room(cache: torch.Tensor) -> int:
    """Free slots to the right of `cache` [B, h, n, hd] inside the buffer it is a view of
    (0 unless it is a column slice of a [B, h, C, hd] buffer that `append_slots` made)."""
    b, h, n, d = cache.shape
    s0, s1, s2, s3 = cache.stride()
    if s3 != 1 or s2 != d or s1 % d or (h > 1 and s0 != h * s1) or b * h == 0:
        return 0
    cap, off = s1 // d, cache.storage_offset()
    col0 = off // d
    room = cap - col0 - n
    need = (off + (b - 1) * s0 + (h - 1) * s1 + cap * d - col0 * d) * cache.element_size()
    return room if off < s1 and room > 0 and cache.untyped_storage().nbytes() >= need else 0


def append_slots(cache: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """`cache` [B, h, n, hd] + `new` [B, h, c, hd] -> [B, h, n + c, hd]. Written in place when
    the buffer behind `cache` has room, else into a new buffer with GROW_SLOTS spare slots:
    the copy of the whole cache a concatenation makes every step happens once every
    GROW_SLOTS steps (a preallocated KV cache, as FT and ExeGPT's XRunner keep, §2). Each
    step's cache is a view, so two states must not append to views of one buffer (every
    state the engine makes — select, concat, state_part, a received state — is a copy)."""
    b, h, n, d = cache.shape
    c = new.shape[2]
    if _room(cache) >= c:
        out = cache.as_strided((b, h, n + c, d), cache.stride(), cache.storage_offset())
        out[:, :, n:].copy_(new)
        return out
    out = _buffer(cache, b, n + c)
    out[:, :, :n].copy_(cache)
    out[:, :, n:].copy_(new)
    return out


def gather_slots(cache: torch.Tensor, idx: torch.Tensor, c0: int) -> torch.Tensor:
    """Rows `idx`, columns c0.. of `cache`, in a new buffer with GROW_SLOTS spare slots."""
    out = _buffer(cache, len(idx), cache.shape[2] - c0)
    return torch.index_select(cache[:, :, c0:].detach(), 0, idx, out=out)   # inference: no autograd


def join_slots(a: torch.Tensor, b: torch.Tensor, n: int) -> torch.Tensor:
    """Rows of `a` then of `b`, each right-aligned in `n` columns (zeros before its first),
    in a new buffer with GROW_SLOTS spare slots (`SeqState.concat`)."""
    ba, bb = a.shape[0], b.shape[0]
    out = _buffer(a, ba + bb, n)
    for rows, t in ((slice(0, ba), a), (slice(ba, ba + bb), b)):
        m = t.shape[2]
        out[rows, :, :n - m].zero_()
        out[rows, :, n - m:].copy_(t)
    return out


def reserve(cache: torch.Tensor, slots: int = GROW_SLOTS) -> torch.Tensor:
    """`cache` as a view of a buffer with `slots` free slots on the right (what a running
    cache has between `append_slots` reallocations; the profiler's steady state)."""
    b, h, n, d = cache.shape
    buf = cache.new_empty((b, h, n + slots, d))
    buf[:, :, :n].copy_(cache)
    return buf[:, :, :n]


def step_block(w: Weights, lay: Layer, x: torch.Tensor, kc: torch.Tensor, vc: torch.Tensor,
               mask: torch.Tensor, ck, cv, cmask, ar: AllReduce):
    a, hd = lay.attn, w.head_dim
    h = norm(x, lay.ln1)
    q = _heads(F.linear(h, a.wq, a.bq), hd)
    kc = append_slots(kc, _heads(F.linear(h, a.wk, a.bk), hd))
    vc = append_slots(vc, _heads(F.linear(h, a.wv, a.bv), hd))
    x = x + _out(a, F.scaled_dot_product_attention(q, kc, vc, attn_mask=mask, scale=w.attn_scale), ar)
    if lay.cross is not None:
        c = lay.cross
        q = _heads(F.linear(norm(x, lay.ln_cross), c.wq), hd)
        x = x + _out(c, F.scaled_dot_product_attention(q, ck, cv, attn_mask=cmask, scale=w.attn_scale), ar)
    x = x + _mlp(lay, norm(x, lay.ln2), ar)
    return x, kc, vc


def decode_stage(w: Weights, layers: tuple[Layer, ...], st: SeqState, x: torch.Tensor,
                 ar: AllReduce) -> torch.Tensor:
    """This stage's decoder layers advance every sequence of `st` by one token (in place)."""
    dtype = x.dtype
    st.valid = torch.cat((st.valid, torch.ones((len(st), 1), dtype=torch.bool)), 1)
    st.pos = torch.cat((st.pos, st.next_pos[:, None]), 1)
    mask = torch.zeros(st.valid.shape, dtype=dtype).masked_fill_(~st.valid, NEG_INF)[:, None, None]
    if w.family == "t5":
        rel = (st.pos - st.next_pos[:, None])[:, None]
        mask = mask + rel_bias(w.dec_rel_bias, rel, False).to(dtype)
    cmask = None
    if st.cvalid is not None:
        cmask = torch.zeros(st.cvalid.shape, dtype=dtype).masked_fill_(~st.cvalid, NEG_INF)[:, None, None]
    for i, lay in enumerate(layers):
        ck = st.ck[i] if st.ck else None
        cv = st.cv[i] if st.cv else None
        x, st.k[i], st.v[i] = step_block(w, lay, x, st.k[i], st.v[i], mask, ck, cv, cmask, ar)
    st.next_pos = st.next_pos + 1
    return x


def extend_stage(w: Weights, layers: tuple[Layer, ...], st: SeqState, x: torch.Tensor,
                 ar: AllReduce) -> torch.Tensor:
    """This stage's decoder layers take `x` [B, c, hidden] (c prompt tokens per sequence, a
    chunk of a prefill) on top of `st`'s cache: causal among the chunk, every cached slot
    visible (decoder-only; `decode_stage` is the c = 1 case with cross-attention)."""
    b, c = x.shape[0], x.shape[1]
    qpos = st.next_pos[:, None] + torch.arange(c)
    st.valid = torch.cat((st.valid, torch.ones((b, c), dtype=torch.bool)), 1)
    st.pos = torch.cat((st.pos, qpos), 1)
    allowed = st.valid[:, None, :] & (st.pos[:, None, :] <= qpos[:, :, None])
    mask = torch.zeros(allowed.shape, dtype=x.dtype).masked_fill_(~allowed, NEG_INF)[:, None]
    for i, lay in enumerate(layers):
        x, st.k[i], st.v[i] = step_block(w, lay, x, st.k[i], st.v[i], mask, None, None, None, ar)
    st.next_pos = st.next_pos + c
    return x


def head(w: Weights, x: torch.Tensor) -> torch.Tensor:
    """Final norm + tied LM head -> logits [B, vocab] (the runner suppresses EOS, ExeGPT §7)."""
    h = norm(x[:, -1], w.final) * w.head_scale
    return F.linear(h, w.tok_emb)


def next_tokens(w: Weights, x: torch.Tensor) -> torch.Tensor:
    logits = head(w, x)
    logits[:, w.eos_id] = NEG_INF
    return logits.argmax(-1)


def state_from_tensors(ids: list[int], ts: list[torch.Tensor], num_layers: int, cross: bool) -> SeqState:
    """Inverse of `SeqState.tensors` (the receiving side of the WAA KV hand-over)."""
    k, v = ts[:num_layers], ts[num_layers:2 * num_layers]
    valid, pos, next_pos = ts[2 * num_layers].bool(), ts[2 * num_layers + 1], ts[2 * num_layers + 2]
    if not cross:
        return SeqState(list(ids), list(k), list(v), valid, pos, next_pos)
    r = ts[2 * num_layers + 3:]
    return SeqState(list(ids), list(k), list(v), valid, pos, next_pos, list(r[:num_layers]),
                    list(r[num_layers:2 * num_layers]), r[2 * num_layers].bool())


def state_part(st: SeqState, lo: int, hi: int, h0: int, h1: int) -> SeqState:
    """Layers [lo, hi) and heads [h0, h1) of a state (what one decode rank receives)."""
    sl = lambda ts: [t[:, h0:h1].contiguous() for t in ts[lo:hi]]  # noqa: E731
    return SeqState(st.ids, sl(st.k), sl(st.v), st.valid, st.pos, st.next_pos,
                    sl(st.ck) if st.ck else None, sl(st.cv) if st.cv else None, st.cvalid)
