"""Bodies of the study commands (`case-study`, `attribute`, `memory`, `equal-throughput`,
`regress`, `shift`, `traces`, `modern`, `monotonicity`): compose the scenarios, call the
study (which returns tables), write its outputs under runs/ (harness.cli.output) and print a
markdown summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.atomic import write_frame, write_text
from harness.cli.output import write_figure, write_study, write_tables
from harness.config import build_scenario, compose
from harness.data.manifest import missing_data
from harness.errors import UserError
from harness.results.markdown import markdown_table

GOLDEN = Path(__file__).resolve().parents[2] / "benchmarks" / "golden" / "regress.json"


def case_study(overrides: list[str]) -> None:
    """Paper Table 6: OPT-13B / S / a40x4 at 3.1, 5.9, 11.5 s, Inf, ours beside the paper's; writes runs/table6/."""
    import pandas as pd

    from harness.policies import Context
    from harness.scheduler.bounds import derive_bounds
    from harness.scheduler.case_study import SCENARIO, bound_rows, case_study_rows
    m, c, t = SCENARIO
    # Both readings unless a mode is given (`mode=paper`, `mode.latency=...`).
    modes = [[]] if any(o.startswith("mode") for o in overrides) else [["mode=ours"], ["mode=paper"]]
    rows, brows = [], []
    for mode in modes:
        s = build_scenario(compose([f"model={m}", f"cluster={c}", f"task={t}", *overrides, *mode]))
        ctx = Context.of(s)
        rows.append(pd.DataFrame(case_study_rows(ctx, s.search.resolution)).assign(mode=s.mode.label()))
        brows.append(pd.DataFrame(bound_rows(derive_bounds(ctx))).assign(mode=s.mode.label()))
    rows, brows = pd.concat(rows, ignore_index=True), pd.concat(brows, ignore_index=True)
    out = Path("runs/table6")
    write_tables(out, {"case_study": rows, "bounds": brows}, formats=("csv",))
    print(markdown_table(rows, ".3f"))
    print()
    print(markdown_table(brows, ".3f"))
    print(f"wrote {out}/case_study.csv, {out}/bounds.csv", file=sys.stderr)


def attribute(overrides: list[str]) -> None:
    """Why claims miss: each suspect (mode options, FT baseline, cost-model constants) switched alone from mode=paper and mode=ours; writes runs/attribution/."""
    from harness.specs.mode import PAPER, make_mode
    from harness.studies.attribution import factorial
    s = build_scenario(compose([o for o in overrides if not o.startswith("--")]))
    modes = [s.mode] if any(o.startswith("mode") for o in overrides) else [PAPER, make_mode("ours")]
    fine = any(o.startswith("search.resolution") for o in overrides)     # default: coarse (the docstring of
    table = factorial(modes, s.search.resolution if fine else "coarse", n_jobs=2)   # harness.studies.attribution)
    path = write_frame(table, Path("runs/attribution/attribution.csv"))
    print(f"wrote {path} ({len(table)} rows: {table['suspect'].nunique()} variants x "
          f"{table['claim'].nunique()} claims)", file=sys.stderr)


def memory(overrides: list[str]) -> None:
    """Fig. 9 as the paper ran it: per-GPU memory of each GPU group (OPT-13B, GPT-3 101B; T, G; no bound), WAA's weight overhead under each definition; writes runs/fig9/."""
    from harness.figures.memory import memory_group_bars
    from harness.studies.memory_groups import study
    out = Path("runs/fig9")
    tables = study(overrides=tuple(overrides))
    groups = tables["memory_groups"]
    write_tables(out, tables)
    for m in groups["mode"].unique():
        write_figure(memory_group_bars(groups[groups["mode"] == m]), out / "figures",
                     "memory_groups" if m == "ours" else f"memory_groups-{m}")
    print(markdown_table(tables["weight_overhead"].drop(columns=["how"]), ".3f"))


def equal_throughput(overrides: list[str]) -> None:
    """§8 latency at equal throughput: ExeGPT's lowest latency reaching FT's best throughput, per paper scenario, both modes (coarse grid unless search.resolution=fine); writes runs/equal_throughput/."""
    from harness.studies import equal_throughput as eq
    fine = any(o.startswith("search.resolution") for o in overrides)      # default coarse: ~1 min, not ~2.5
    tables = eq.study(resolution="fine" if fine else "coarse",
                      overrides=tuple(o for o in overrides if not o.startswith("search.resolution")))
    claims, table = tables["claims"], tables["equal_throughput"]
    summary = ("# §8: latency at equal throughput\n\n" + eq.__doc__ + "\n" + markdown_table(claims, ".3f")
               + "\n\n" + markdown_table(table.drop(columns=["exegpt_knobs"]), ".3f") + "\n")
    write_study(Path("runs/equal_throughput"), tables, texts={"summary.md": summary})
    print(markdown_table(claims.drop(columns=["how"]), ".3f"))


def regress(overrides: list[str]) -> None:
    """Searched throughput vs the golden file (a checkout's benchmarks/golden/regress.json or --golden=PATH); fails on a >1% drop, a violated bound or a feasibility change (--update rewrites it)."""
    import pandas as pd

    from harness.results.golden import benchmark_json, compare, golden_document, load_golden
    from harness.results.record import provenance
    from harness.studies.regress import run_scenarios
    update = "--update" in overrides
    paths = [o.removeprefix("--golden=") for o in overrides if o.startswith("--golden=")]
    extra = [o for o in overrides if o != "--update" and not o.startswith("--golden=")]
    if extra:
        raise UserError(f"regress: takes no overrides (the scenario set is fixed), got {' '.join(extra)}; "
                        "use --update or --golden=PATH")
    golden_path = Path(paths[-1]) if paths else GOLDEN
    golden = load_golden(golden_path) if golden_path.exists() else None
    if golden is None and not update:
        raise UserError(f"regress: no golden file at {golden_path}; create it with `harness regress --update"
                        f"{' --golden=' + str(golden_path) if paths else ''}` (in a checkout: make regress-update)")
    now = run_scenarios({k: v["bound_s"] for k, v in golden.items()} if golden and not update else None)
    out = Path("runs/regress")
    write_text(out / "benchmark.json", json.dumps(benchmark_json(now), indent=2))
    if golden is not None:
        rows, failures = compare(golden, now)
        print(markdown_table(pd.DataFrame(rows), ".3f"))
    if update:
        write_text(golden_path, json.dumps(golden_document(now, provenance()["git_commit"]), indent=2) + "\n")
        print(f"wrote {golden_path} ({len(now)} scenarios)", file=sys.stderr)
        return
    print(f"wrote {out}/benchmark.json (github-action-benchmark, customBiggerIsBetter)", file=sys.stderr)
    if failures:
        raise UserError(f"regress: {len(failures)} regression(s): " + "; ".join(failures))
    print(f"regress: {len(rows)} scenarios, no regression", file=sys.stderr)


def shift(overrides: list[str]) -> None:
    """Fig. 11: a schedule tuned on the nominal distribution under output-length shifts, SLA-(a)/(b), redeploy cost; writes runs/fig11/."""
    from harness.figures.shift import fig11, summary
    from harness.studies.shift import study
    tables = study(overrides=tuple(overrides))
    text = summary(tables)
    write_study(Path("runs/fig11"), tables, {"fig11": fig11(tables["shift"], tables["tightening"])},
                {"summary.md": text})
    print(text)


def traces(overrides: list[str]) -> None:
    """Fig. 10: real traces (10% estimates, 90% replayed), gains over FT, correlations, online replay; writes runs/fig10/."""
    from harness.figures.traces import fig10, summary
    from harness.studies.traces import study
    s = build_scenario(compose(overrides))
    if not s.paths.traces.exists():
        raise missing_data("paths.traces", s.paths.traces, "traces")
    tables = study(s.paths.traces, overrides=tuple(overrides))
    text = summary(tables)
    write_study(Path("runs/fig10"), tables, {"fig10": fig10(tables["gains"], tables["online"])}, {"summary.md": text})
    print(text)


def modern(overrides: list[str]) -> None:
    """Baselines beside ExeGPT (experiment=fig7|modern|modern_full): Fig. 7's FT vs DSI/vLLM/ORCA, modern schedulers offline and online; writes runs/<experiment>/."""
    from harness.cli.figures import write_outputs
    from harness.figures.modern import draw
    from harness.studies.modern import run as run_modern
    out, tables, timing = run_modern(overrides)
    if "online" in tables:
        write_tables(out, {"online": tables["online"]})
    write_text(out / "timing.json", json.dumps(timing, indent=1) + "\n")
    write_outputs(draw(out.parent, out.name))
    df = tables["results"]
    cols = ["model", "task", "bound", "policy", "status", "throughput_seq_s", "latency_s", "engine", "knobs"]
    print(markdown_table(df[[c for c in cols if c in df.columns]], ".3f"))


def monotonicity(overrides: list[str]) -> None:
    """Share of knob steps monotone within 5% (ExeGPT §5, Table 5); writes runs/table5/monotonicity.csv."""
    from harness.cli.commands import monotonicity_study
    from harness.scheduler.monotonicity import PAPER_SHARES, overall_shares
    table = monotonicity_study(overrides)
    path = write_frame(table, Path("runs/table5/monotonicity.csv"))
    o = overall_shares(table)
    print(markdown_table(table, ".3f"))
    print(f"overall ({o['pairs']} pairs, paper's directions): throughput {o['thr_monotone_share']:.1%} "
          f"(paper {PAPER_SHARES['throughput']:.0%}), latency {o['lat_monotone_share']:.1%} "
          f"(paper {PAPER_SHARES['latency']:.0%}); either direction: throughput "
          f"{o['thr_any_direction_share']:.1%}, latency {o['lat_any_direction_share']:.1%}")
    print(f"wrote {path}", file=sys.stderr)
