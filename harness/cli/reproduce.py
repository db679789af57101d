"""`harness reproduce [--quick]`: every paper artefact in order, each step's stdout kept
under runs/logs/, the wall time of each step and of the whole printed. Sweeps are resumable,
so an interrupted reproduction continues where it stopped."""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from harness.atomic import write_text
from harness.errors import UserError

# (log name, harness command line). Order matters: figures and the report read what the
# steps before them wrote.
FULL = (
    ("calibration", ["calibrate"]),
    ("fig6", ["sweep", "experiment=fig6"]),
    ("fig8", ["sweep", "experiment=fig8"]),
    ("fig8_a40x32", ["sweep", "experiment=fig8_a40x32"]),
    ("fig9", ["sweep", "experiment=fig9"]),
    ("fig9_groups", ["memory"]),
    ("equal_throughput", ["equal-throughput"]),
    ("full", ["sweep", "experiment=full"]),
    ("table5", ["monotonicity"]),
    ("table6", ["case-study"]),
    # Why claims miss: every suspect switched alone from both readings (coarse grid, both cores).
    ("attribution", ["attribute"]),
    ("fig11", ["shift"]),
    ("fig10", ["traces"]),
    # The real engine: the 27-configuration study, profiles retaken (about 4-4.5 min on 2
    # cores; docs/real-execution.md). The CI-sized version is `pytest -m slow tests/test_profiler.py`.
    ("fidelity", ["fidelity", "runner.fidelity.size=full", "runner.fidelity.reprofile=true"]),
    # Decision fidelity: the search's candidates run for real (8 scenarios x 3 passes, the
    # smallest form issue 20 asks for; about 8 min here).
    ("decide", ["decide"]),
    # Our engine vs ctranslate2 at the same batch, precision and cores (opt-20m, 2 rounds; ~2 min).
    ("engines", ["engines", "experiment=engines_tiny"]),
    # Baselines (issue 17): §7 Fig. 7 (FT vs DSI, vLLM, ORCA) and ExeGPT vs modern schedulers.
    ("fig7", ["modern", "experiment=fig7"]),
    ("modern", ["modern", "experiment=modern"]),
    ("figures", ["figures"]),
)
OPTIONAL = ("calibration", "fig10")   # need measured data (harness data); skipped with the command to get it
QUICK = (
    ("quick", ["sweep", "experiment=quick"]),
    ("table6", ["case-study"]),
    ("fig7", ["modern", "experiment=fig7", "task=S", "bound=p30,inf"]),   # Fig. 7, task S only
    ("figures", ["figures"]),
)


def reproduce(overrides: list[str], commands: Mapping[str, Callable[[list[str]], None]]) -> None:
    """Run FULL (or QUICK with --quick) through `commands` (the console script's table)."""
    quick = "--quick" in overrides
    steps = QUICK if quick else FULL
    t_all = time.perf_counter()
    timings, skipped = [], []
    for i, (name, argv) in enumerate(steps, 1):
        print(f"==> [{i}/{len(steps)}] harness {' '.join(argv)}", file=sys.stderr, flush=True)
        t0, out = time.perf_counter(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                commands[argv[0]](argv[1:])
        except UserError as e:
            if name not in OPTIONAL:
                raise
            print(f"    {name}: skipped ({e})", file=sys.stderr)
            skipped.append(f"{name}: {e}")
            out.write(f"skipped: {e}\n")
        write_text(Path("runs/logs") / f"{name}.txt", out.getvalue())
        timings.append((name, time.perf_counter() - t0))
        print(f"    {name}: {timings[-1][1]:.1f} s (stdout in runs/logs/{name}.txt)", file=sys.stderr)
    total = time.perf_counter() - t_all
    lines = [f"{n}\t{s:.1f}" for n, s in timings] + [f"total\t{total:.1f}"]
    write_text(Path("runs/logs") / f"reproduce{'-quick' if quick else ''}-timing.tsv", "\n".join(lines) + "\n")
    print(f"reproduce{' --quick' if quick else ''}: done in {total:.0f} s; see runs/REPORT.md", file=sys.stderr)
    if skipped:
        print(f"reproduce: {len(skipped)} step(s) skipped for want of data; `make data` (harness data fetch) "
              "gets it, then rerun (finished steps are kept):", *(f"  {s}" for s in skipped), sep="\n",
              file=sys.stderr)
