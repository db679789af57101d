"""FT-equivalent engine: the same seeded models converted to ctranslate2, static batches.

ctranslate2 (an optimised C++ inference engine in FasterTransformer's family) is the
"FT" reference: it has no way to add a sequence to a running batch, so it runs FT's
semantics (ExeGPT §1, §7): a fixed batch of B prompts, padded, every sequence generated to
the batch's longest output (`min_length = max_length`, EOS suppressed). The converter wants
a tokenizer, and generate/translate take token strings: a word-level tokenizer whose token
`t<i>` is id i is generated offline and saved next to the HF model. Precision is explicit:
`float32` (same as the torch runner) or `int8` weights (`int8_float32`).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.engine.weights import build_hf_model
from harness.errors import UserError, check
from harness.specs.models import ModelSpec
from harness.workload.streams import Requests

COMPUTE_TYPES = {"float32": "float32", "int8": "int8_float32"}


def _token(i: int) -> str:
    return f"t{i}"


def save_tokenizer(spec: ModelSpec, hf_config, path: Path) -> None:
    """A word-level tokenizer: token `t<i>` <-> id i for every id of the vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {_token(i): i for i in range(spec.vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=_token(spec.vocab_size - 2)))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    special = {"unk_token": _token(spec.vocab_size - 2)}   # prompts never use it (run.prompts_for)
    for name in ("pad", "eos", "bos", "unk"):
        tid = getattr(hf_config, f"{name}_token_id", None)
        if tid is not None:
            special[f"{name}_token"] = _token(int(tid))
    PreTrainedTokenizerFast(tokenizer_object=tok, **special).save_pretrained(str(path))


def convert(spec: ModelSpec, out_dir: Path, precision: str = "float32", seed: int = 0) -> Path:
    """HF model (seeded) + tokenizer -> a ctranslate2 model directory (cached by name)."""
    import ctranslate2
    check(precision in COMPUTE_TYPES, "ct2.precision", f"'{precision}' not in {', '.join(COMPUTE_TYPES)}")
    target = Path(out_dir) / f"{spec.name}-seed{seed}"
    if (target / "model.bin").exists():
        return target
    model = build_hf_model(spec, seed)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        save_tokenizer(spec, model.config, Path(tmp))
        ctranslate2.converters.TransformersConverter(tmp).convert(str(target), force=True)
    return target


@dataclass(frozen=True, slots=True)
class CT2Result:
    precision: str
    threads: int
    batch_size: int
    num_requests: int
    wall_s: float                    # first batch start -> last batch end
    throughput_seq_s: float          # requests / wall
    batch_latency_max_s: float       # slowest batch (FT's latency: the batch's longest output)
    tokens: list[list[int]]          # generated ids, request order (truncated to each length)


def batch_lengths(reqs: Requests, batch_size: int) -> list[int]:
    """FT semantics: every sequence of a batch is decoded to the batch's longest output."""
    return [int(np.max(reqs.output_len[lo:lo + batch_size])) for lo in range(0, len(reqs), batch_size)]


def run_static(spec: ModelSpec, model_dir: Path, prompts: list[list[int]], reqs: Requests,
               batch_size: int, precision: str = "float32", threads: int = 2) -> CT2Result:
    """FT semantics on ctranslate2: batches of `batch_size` in order, each to its max length."""
    import ctranslate2
    check(precision in COMPUTE_TYPES, "ct2.precision", f"'{precision}' not in {', '.join(COMPUTE_TYPES)}")
    t5 = spec.family == "t5"
    cls = ctranslate2.Translator if t5 else ctranslate2.Generator
    try:
        eng = cls(str(model_dir), device="cpu", compute_type=COMPUTE_TYPES[precision], intra_threads=threads)
    except (RuntimeError, ValueError) as e:
        raise UserError(f"ct2: cannot load {model_dir}: {e}") from None
    outs: list[list[int]] = []
    lat, t0 = [], time.perf_counter()
    for lo, n in zip(range(0, len(prompts), batch_size), batch_lengths(reqs, batch_size), strict=True):
        batch = prompts[lo:lo + batch_size]
        start = time.perf_counter()
        if t5:
            res = eng.translate_batch([[_token(t) for t in p] for p in batch], beam_size=1,
                                      max_decoding_length=n, min_decoding_length=n)
            got = [r.hypotheses[0] for r in res]
        else:   # the prompt's tokens initialise the KV cache; n new tokens follow it
            res = eng.generate_batch([[_token(t) for t in p] for p in batch], beam_size=1,
                                     max_length=n, min_length=n, include_prompt_in_result=False)
            got = [r.sequences[0] for r in res]
        lat.append(time.perf_counter() - start)
        outs += [[int(t[1:]) for t in g] for g in got]
    wall = time.perf_counter() - t0
    return CT2Result(precision, threads, batch_size, len(prompts), wall, len(prompts) / wall, max(lat),
                     [o[:int(k)] for o, k in zip(outs, reqs.output_len, strict=True)])
