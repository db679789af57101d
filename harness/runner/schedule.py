"""A plan's program as the workers replay it: worker groups -> ranks, traced ops -> calls.

The groups come from the policy (`Policy.worker_groups(plan)`: name -> its pipeline's
stages); ranks are assigned in that order, each stage's TP ranks consecutive, one GPU of the
plan = one worker. A group that ships KV caches (the source of a `transfer`, WAA's encoder)
holds the whole model on one worker: it prefills through every layer and projects every
decoder layer's cross K/V (T5), and each receiving rank gets its layers and heads.
The calls are the discrete-event simulator's trace of the program (`trace_ops`), annotated
with what a replaying worker cannot see from its own group's calls: which prefills wait for
a transfer or join (`park`), after which prefill each transfer leaves and at which join it
is received, and how many hand-overs a sending group must have seen received before each
of its calls (the program's back-pressure, enforced across processes).
"""

from __future__ import annotations

from harness.engine.links import StageDef
from harness.engine.stage import split_layers
from harness.errors import UserError
from harness.policies.base import Plan
from harness.policies.program import Op
from harness.runner.programs import Call, Group
from harness.specs.models import ModelSpec


def stage_defs(spec: ModelSpec, stages, first_rank: int, enc_layers: int, dec_layers: int) -> list[StageDef]:
    enc = split_layers(enc_layers, [s.encoder_layers for s in stages])
    dec = split_layers(dec_layers, [s.decoder_layers for s in stages])
    out, r = [], first_rank
    for st, e, d in zip(stages, enc, dec, strict=True):
        out.append(StageDef(tuple(range(r, r + st.tp_degree)), e, d))
        r += st.tp_degree
    return out


def worker_groups(plan: Plan, spec: ModelSpec, senders: set[str]) -> tuple[Group, ...]:
    """The plan's groups on consecutive ranks (module docstring)."""
    out, rank = [], 0
    m = max(1, int(getattr(plan.costs, "decode_micro_batches", 1)))
    for name, stages in plan.program.worker_groups(plan).items():
        if name in senders:
            if len(stages) != 1 or stages[0].tp_degree != 1:
                raise UserError(f"runner: group '{name}' ships KV caches from {sum(s.tp_degree for s in stages)} "
                                "GPUs; the runner's sending group is one worker")
            defs = [StageDef((rank,), (0, spec.num_encoder_layers), (0, spec.num_decoder_layers))]
        else:
            enc = spec.num_encoder_layers if any(s.encoder_layers for s in stages) else 0
            defs = stage_defs(spec, stages, rank, enc, spec.num_decoder_layers)
        m_e = int(getattr(plan.costs, "encode_micro_batches", 0) or 0) or len(defs)
        out.append(Group(name, tuple(defs), m, m_e))
        rank += sum(len(d.ranks) for d in defs)
    return tuple(out)


def to_calls(ops: list[Op]) -> tuple[Call, ...]:
    """The traced ops with their hand-overs resolved (module docstring)."""
    rows: list[dict] = []
    kv_at: dict[int, int] = {}            # request -> the prefill (index) holding its KV
    transit: dict[str, list[int]] = {}    # receiving group -> transfers not yet joined
    received: dict[str, int] = {}         # sending group -> its hand-overs received so far
    for k, o in enumerate(ops):
        ids = tuple(int(i) for i in o.ids)
        r = {"op": o.op, "group": o.group, "ids": ids, "iterations": int(o.iterations),
             "tokens": tuple(int(t) for t in o.tokens) if o.tokens is not None else (),
             "hold": bool(o.hold), "park": False, "sends": [], "recv": [], "acks": received.get(o.group, 0)}
        if o.op == "prefill":
            for i in ids:
                kv_at[i] = k
        elif o.op == "transfer":
            try:
                src = {kv_at.pop(i) for i in ids}
            except KeyError:
                raise UserError(f"runner: op {k} transfers requests no prefill of '{o.group}' holds") from None
            for p in src:
                rows[p]["park"] = True
            rows[max(src)]["sends"].append((k, o.dst, ids))
            transit.setdefault(o.dst, []).append(k)
        elif o.op == "join":
            want, got = set(ids), set()
            for t in list(transit.get(o.group, [])):
                if set(rows[t]["ids"]) <= want:
                    r["recv"].append((t, rows[t]["group"], rows[t]["ids"]))
                    transit[o.group].remove(t)
                    received[rows[t]["group"]] = received.get(rows[t]["group"], 0) + 1
                    got.update(rows[t]["ids"])
            for i in want - got:
                p = kv_at.pop(i, None)
                if p is None or rows[p]["group"] != o.group:
                    raise UserError(f"runner: op {k} joins request {i}, whose KV is not in '{o.group}'")
                rows[p]["park"] = True
        rows.append(r)
    return tuple(Call(**{**r, "sends": tuple(r["sends"]), "recv": tuple(r["recv"])}) for r in rows)
