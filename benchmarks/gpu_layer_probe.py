"""Time one transformer decoder layer (OPT/GPT-3 shapes, FP16) on a real CUDA GPU.

Standalone (torch only, no harness import) so it runs on a lent GPU machine as is:
    python3 benchmarks/gpu_layer_probe.py OUT.csv
Prefill: B prompts of S tokens, causal SDPA. Decode: B sequences, one new token each,
attending to a KV cache of C tokens. Median of 20 timed runs after 5 warm-ups (CUDA events).
The analytic cost model's prediction for the same points is compared by
`python -m benchmarks.gpu_layer_compare OUT.csv`.
"""

from __future__ import annotations

import csv
import sys

import torch
import torch.nn.functional as F

SHAPES = {"opt-13b": (5120, 40, 20480), "gpt3-39b": (8192, 64, 32768)}


def layer_fn(h: int, heads: int, ffn: int, dev: str):
    t = dict(device=dev, dtype=torch.float16)
    w_qkv, w_o = torch.randn(h, 3 * h, **t) * 0.01, torch.randn(h, h, **t) * 0.01
    w_up, w_dn = torch.randn(h, ffn, **t) * 0.01, torch.randn(ffn, h, **t) * 0.01
    ln1, ln2 = torch.nn.LayerNorm(h, **t), torch.nn.LayerNorm(h, **t)

    def run(x: torch.Tensor, k_cache: torch.Tensor | None, v_cache: torch.Tensor | None) -> torch.Tensor:
        b, s, _ = x.shape
        q, k, v = (ln1(x) @ w_qkv).split(h, dim=-1)
        q, k, v = (z.view(b, s, heads, h // heads).transpose(1, 2) for z in (q, k, v))
        if k_cache is not None:   # attend to the preallocated cache (an engine appends in place)
            k, v = k_cache, v_cache
        a = F.scaled_dot_product_attention(q, k, v, is_causal=k_cache is None)
        x = x + a.transpose(1, 2).reshape(b, s, h) @ w_o
        return x + F.gelu(ln2(x) @ w_up) @ w_dn

    return run


def time_ms(fn, reps: int = 20) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[len(times) // 2]


def main(out: str) -> None:
    dev = "cuda"
    rows = []
    with torch.inference_mode():
        for name, (h, heads, ffn) in SHAPES.items():
            run = layer_fn(h, heads, ffn, dev)
            for b, s in [(1, 128), (1, 512), (4, 256), (8, 512), (16, 512), (32, 256)]:
                x = torch.randn(b, s, h, device=dev, dtype=torch.float16)
                rows.append((name, "prefill", b, s, time_ms(lambda: run(x, None, None))))  # noqa: B023 (called at once)
            for b, c in [(1, 256), (8, 256), (32, 512), (64, 1024), (128, 512), (256, 256)]:
                x = torch.randn(b, 1, h, device=dev, dtype=torch.float16)
                kc = torch.randn(b, heads, c, h // heads, device=dev, dtype=torch.float16)
                vc = torch.randn_like(kc)   # distinct K and V: aliasing would let V hit in L2
                rows.append((name, "decode", b, c, time_ms(lambda: run(x, kc, vc))))  # noqa: B023 (called at once)
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "phase", "batch", "length", "measured_ms"])
        w.writerows(rows)
    print(torch.cuda.get_device_name(), torch.__version__, f"{len(rows)} points ->", out)


if __name__ == "__main__":
    main(sys.argv[1])
