"""End-to-end latency of one static batch (FasterTransformer semantics, ExeGPT §1, §7).

A batch of `batch_size` prompts of `input_len` tokens is encoded (context phase), then
decoded for `output_len` iterations with no early termination. Layers are split evenly
over `pp` pipeline stages of `tp`-way tensor parallelism (FT: max TP inside a node, PP
across nodes). Used to calibrate against FT's published latencies and by the `ft` policy.
"""

from __future__ import annotations

from harness.cost_model.base import CostModel
from harness.specs.models import ModelSpec


def static_batch_latency_s(cm: CostModel, model: ModelSpec, batch_size: int, input_len: int,
                           output_len: int, tp: int, pp: int = 1) -> float:
    inter = pp > 1 and cm.cluster.num_gpus > cm.cluster.gpus_per_node
    hop_bytes = model.hidden_size * model.dtype_bytes
    enc_layers, dec_layers = model.num_encoder_layers, model.num_decoder_layers
    if model.is_encoder_decoder:
        context = enc_layers * cm.encode_layer(model, batch_size, input_len, tp).total_s
        context += dec_layers * cm.cross_kv_s(model, batch_size, input_len, tp)
    else:
        context = dec_layers * cm.encode_layer(model, batch_size, input_len, tp).total_s
        context += cm.lm_head_s(model, batch_size, tp)
    first_ctx = model.self_cache_len(input_len, input_len)      # the prompt's share of the self cache
    context += (pp - 1) * cm.p2p_s(batch_size * input_len * hop_bytes, inter)
    per_step_fixed = cm.lm_head_s(model, batch_size, tp) + (pp - 1) * cm.p2p_s(batch_size * hop_bytes, inter)
    decode = 0.0
    for i in range(output_len):
        layer = cm.decode_layer(model, batch_size, first_ctx + i + 1, tp, input_len).total_s
        decode += dec_layers * layer + per_step_fixed
    return context + decode
