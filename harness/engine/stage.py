"""One pipeline stage of the torch engine: its layers and the encode / decode steps on them.

A `StageModel` holds a contiguous slice of the encoder layers and of the decoder layers
(RRA: every stage holds E/N and D/N, ExeGPT §3; WAA: an encode stage holds only encoder
layers, or a decoder-only model's layers for prefill) for one TP rank. `generate` chains
stages in one process: the reference the distributed runner must agree with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.engine import layers as L
from harness.engine.layers import AllReduce, SeqState, no_allreduce
from harness.engine.weights import Weights


@dataclass(frozen=True, slots=True)
class StageSlice:
    enc_lo: int = 0
    enc_hi: int = 0
    dec_lo: int = 0
    dec_hi: int = 0
    first: bool = True
    last: bool = True


def split_layers(n: int, weights: list[float]) -> list[tuple[int, int]]:
    """Integer layer ranges proportional to `weights` (largest remainder), in stage order."""
    total = sum(weights) or 1.0
    raw = [n * w / total for w in weights]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    out, lo = [], 0
    for c in counts:
        out.append((lo, lo + c))
        lo += c
    return out


class StageModel:
    def __init__(self, w: Weights, sl: StageSlice, dtype: torch.dtype = torch.float32) -> None:
        self.w, self.sl, self.dtype = w, sl, dtype
        self.enc = w.encoder[sl.enc_lo:sl.enc_hi]
        self.dec = w.decoder[sl.dec_lo:sl.dec_hi]
        self.t5 = w.family == "t5"
        self.holds_last_encoder = self.t5 and sl.enc_hi == len(w.encoder) and sl.enc_hi > sl.enc_lo

    @property
    def num_encode_layers(self) -> int:
        """Layers an encoding runs on this stage (T5: encoder layers; else the decoder's)."""
        return len(self.enc) if self.t5 else len(self.dec)

    # ---- encoding (packed) ---------------------------------------------------------------
    def prompt_lengths(self, prompts: list[list[int]]) -> list[int]:
        """Tokens encoded per prompt: T5 all of it; decoder-only all but the last (module doc)."""
        return [len(p) if self.t5 else len(p) - 1 for p in prompts]

    def segments(self, prompts: list[list[int]], pad_to: int | None = None) -> tuple[list[int], torch.Tensor]:
        """Packed segment lengths and the index of the real tokens among them. With `pad_to`
        (FT: prompts padded to the batch's longest, ExeGPT §1) each prompt is followed by a
        segment of padding: computed like FT computes it, attended by nobody, then dropped."""
        real = self.prompt_lengths(prompts)
        if pad_to is None:
            return real, torch.arange(sum(real))
        pad_to = max(pad_to, max(real))
        segs, idx, at = [], [], 0
        for n in real:
            segs += [n, pad_to - n]
            idx.append(torch.arange(at, at + n))
            at += pad_to
        return segs, torch.cat(idx)

    def embed_prompts(self, prompts: list[list[int]], pad_to: int | None = None) -> torch.Tensor:
        segs, _ = self.segments(prompts, pad_to)
        toks = []
        for p, n in zip(prompts, self.prompt_lengths(prompts), strict=True):
            toks += p[:n]
            if pad_to is not None:
                toks += [0] * (max(pad_to, max(self.prompt_lengths(prompts))) - n)
        _, pos = L.packed_layout(segs)
        return L.embed_prompt(self.w, torch.tensor(toks, dtype=torch.long), pos)

    def encode(self, x: torch.Tensor, prompts: list[list[int]], ids: list[int],
               ar: AllReduce = no_allreduce, pad_to: int | None = None) -> tuple[torch.Tensor, SeqState | None]:
        """T5: this stage's encoder layers (+ final norm on the last one). Decoder-only:
        prefill through this stage's layers; returns the prompt KV cache as a SeqState.
        The returned hidden keeps padding segments (the next stage needs them)."""
        segs, real_idx = self.segments(prompts, pad_to)
        lengths = self.prompt_lengths(prompts)
        seg, pos = L.packed_layout(segs)
        layers = self.enc if self.t5 else self.dec
        if not layers or x.shape[1] == 0:
            return x, (None if self.t5 else self._prefill_state([], lengths, ids))
        mask = L.packed_mask(self.w, seg, pos, causal=not self.t5, dtype=self.dtype)
        ks, vs = [], []
        for lay in layers:
            x, k, v = L.full_block(self.w, lay, x, mask, ar)
            ks.append(k)
            vs.append(v)
        if self.holds_last_encoder:
            x = L.norm(x, self.w.enc_final)
        kv = [(k[:, :, real_idx], v[:, :, real_idx]) for k, v in zip(ks, vs, strict=True)]
        return x, (None if self.t5 else self._prefill_state(kv, lengths, ids))

    def real_tokens(self, x: torch.Tensor, prompts: list[list[int]], pad_to: int | None = None) -> torch.Tensor:
        """Drop padding segments of a packed hidden state."""
        return x if pad_to is None else x[:, self.segments(prompts, pad_to)[1]]

    def _prefill_state(self, kv, lengths: list[int], ids: list[int]) -> SeqState:
        b, n = len(lengths), max(lengths) if lengths else 0
        if kv:
            k = [L.unpack(t, lengths, right=True)[0] for t, _ in kv]
            v = [L.unpack(t, lengths, right=True)[0] for _, t in kv]
            valid = L.unpack(kv[0][0], lengths, right=True)[1]
        else:
            k, v = L.empty_self_cache(self.w, len(self.dec), b, self.dtype)
            k = [t.new_zeros((b, t.shape[1], n, t.shape[3])) for t in k]
            v = [t.new_zeros((b, t.shape[1], n, t.shape[3])) for t in v]
            lens = torch.tensor(lengths, dtype=torch.long)
            valid = torch.arange(n)[None, :] >= (n - lens)[:, None]
        pos = torch.where(valid, torch.cumsum(valid.long(), 1) - 1, -1)
        return SeqState(list(ids), k, v, valid, pos, torch.tensor(lengths, dtype=torch.long))

    def cross_state(self, enc_out: torch.Tensor, lengths: list[int], ids: list[int]) -> SeqState:
        """T5: project the encoder output to this stage's cross K/V; empty self caches."""
        ck, cv, cvalid = [], [], None
        for lay in self.dec:
            k = L._heads(F.linear(enc_out, lay.cross.wk), self.w.head_dim)
            v = L._heads(F.linear(enc_out, lay.cross.wv), self.w.head_dim)
            kk, cvalid = L.unpack(k, lengths, right=False)
            ck.append(kk)
            cv.append(L.unpack(v, lengths, right=False)[0])
        b = len(lengths)
        if cvalid is None:
            cvalid = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
        k, v = L.empty_self_cache(self.w, len(self.dec), b, self.dtype)
        return SeqState(list(ids), list(k), list(v), torch.zeros((b, 0), dtype=torch.bool),
                        torch.zeros((b, 0), dtype=torch.long), torch.zeros(b, dtype=torch.long), ck, cv, cvalid)

    def first_inputs(self, prompts: list[list[int]]) -> torch.Tensor:
        """Token ids fed to the first decoding iteration."""
        if self.t5:
            return torch.full((len(prompts),), self.w.decoder_start_id, dtype=torch.long)
        return torch.tensor([p[-1] for p in prompts], dtype=torch.long)

    # ---- decoding ------------------------------------------------------------------------
    def decode(self, st: SeqState, x_or_tokens: torch.Tensor, ar: AllReduce = no_allreduce) -> torch.Tensor:
        x = L.embed_step(self.w, x_or_tokens, st.next_pos) if self.sl.first else x_or_tokens
        return L.decode_stage(self.w, self.dec, st, x, ar)

    # ---- chunked prefill (decoder-only) -------------------------------------------------
    def empty_state(self, ids: list[int]) -> SeqState:
        """No tokens cached yet: the state a prompt's first chunk extends."""
        k, v = L.empty_self_cache(self.w, len(self.dec), len(ids), self.dtype)
        b = len(ids)
        return SeqState(list(ids), list(k), list(v), torch.zeros((b, 0), dtype=torch.bool),
                        torch.zeros((b, 0), dtype=torch.long), torch.zeros(b, dtype=torch.long))

    def embed_chunk(self, tokens: list[int], first_pos: int) -> torch.Tensor:
        """[1, c, hidden]: prompt tokens at positions first_pos.. (first stage)."""
        pos = torch.arange(first_pos, first_pos + len(tokens))
        return L.embed_prompt(self.w, torch.tensor(tokens, dtype=torch.long), pos)

    def extend(self, st: SeqState, x: torch.Tensor, ar: AllReduce = no_allreduce) -> torch.Tensor:
        """This stage's layers on a chunk of prompt tokens (`layers.extend_stage`)."""
        return L.extend_stage(self.w, self.dec, st, x, ar)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        return L.next_tokens(self.w, x)


def generate(w: Weights, prompts: list[list[int]], output_lens: list[int],
             dtype: torch.dtype = torch.float32) -> list[list[int]]:
    """Single-stage reference: encode all prompts, decode with early termination (each
    sequence leaves after its forced length, KV compacted)."""
    stage = StageModel(w, StageSlice(0, len(w.encoder), 0, len(w.decoder)), dtype)
    ids = list(range(len(prompts)))
    x, st = stage.encode(stage.embed_prompts(prompts).to(dtype), prompts, ids)
    if stage.t5:
        st = stage.cross_state(x, stage.prompt_lengths(prompts), ids)
    toks = stage.first_inputs(prompts)
    out: list[list[int]] = [[] for _ in prompts]
    left = list(output_lens)
    while len(st):
        nxt = stage.tokens(stage.decode(st, toks))
        keep = []
        for row, (i, t) in enumerate(zip(st.ids, nxt.tolist(), strict=True)):
            out[i].append(t)
            left[i] -= 1
            if left[i] > 0:
                keep.append(row)
        if len(keep) < len(st):
            st = st.select(keep)
            nxt = nxt[keep]
        toks = nxt
    return out
