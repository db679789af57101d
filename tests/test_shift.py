"""Distribution shift (ExeGPT §8, Fig. 11): truncated skew-normal lengths with given moments,
output shifts of a task, the study's SLA readings, and (slow) the whole study's outputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.errors import UserError
from harness.workload import get_task, shifted_output, skew_normal
from harness.workload.shift import moments, skewnorm_params


def test_closed_form_parameters_by_hand():
    # skewness 0: the normal itself
    assert skewnorm_params(100, 10, 0.0) == pytest.approx((100, 10, 0))
    # skewness 0.5: delta^2 = pi/2 c/(1+c), c = (2*0.5/(4-pi))^(2/3) = 1.1065 -> delta = 0.9086,
    # a = delta/sqrt(1-delta^2) = 2.174, omega = 50/sqrt(1 - 2 delta^2/pi) = 72.58,
    # xi = 1000 - omega delta sqrt(2/pi) = 947.39
    xi, omega, a = skewnorm_params(1000, 50, 0.5)
    assert (xi, omega, a) == pytest.approx((947.39, 72.58, 2.1738), abs=0.01)
    mean, var, skew = stats.skewnorm.stats(a, loc=xi, scale=omega, moments="mvs")
    assert (float(mean), math.sqrt(var), float(skew)) == pytest.approx((1000, 50, 0.5), rel=1e-9)


def test_moments_match_far_from_truncation():
    """[700, 1400] around 1000 +- 50: truncation is negligible, so the matched and the shape
    readings agree with each other and with the closed form."""
    for match in (True, False):
        d = skew_normal(1000, 50, 0.5, 1400, min_len=700, match_skewness=match)
        assert moments(d) == pytest.approx((1000, 50, 0.5), abs=2e-3)
    d = skew_normal(1000, 50, -0.3, 1400, min_len=700, match_skewness=True)
    assert moments(d) == pytest.approx((1000, 50, -0.3), abs=2e-3)


def test_moments_match_on_task_t_range():
    """Task T's outputs (mean 128, std 68 on [1, 320]): mean and std are matched exactly; the
    shape skewness moves the measured skewness in its direction."""
    m0, s0, k0 = moments(get_task("T").output)
    skews = []
    for g in (-0.4, 0.0, 0.4):
        d = skew_normal(128, 68, g, 320)
        m, s, k = moments(d)
        assert (m, s) == pytest.approx((128, 68), rel=1e-4)
        skews.append(k)
    assert skews[0] < skews[1] < skews[2]
    assert skews[1] == pytest.approx(k0, abs=1e-4)       # shape 0 = the truncated normal of task T


def test_identity_shift_is_the_nominal_distribution():
    w = get_task("T")
    s = shifted_output(w)
    np.testing.assert_array_equal(s.output.values, w.output.values)
    np.testing.assert_allclose(s.output.probs, w.output.probs, atol=1e-6)
    assert s.input is w.input


def test_mean_shift_stretches_the_range():
    w = get_task("T")
    up, down = shifted_output(w, mean_factor=1.3), shifted_output(w, mean_factor=0.7)
    assert up.output.max == math.ceil(320 * 1.3) and down.output.max == 320
    assert up.output.mean == pytest.approx(1.3 * 128, rel=1e-4)
    assert down.output.mean == pytest.approx(0.7 * 128, rel=1e-4)
    assert shifted_output(w, std_factor=1.3).output.std == pytest.approx(1.3 * 68, rel=1e-4)
    assert up.output_p99 > w.output_p99


def test_impossible_moments_are_a_user_error():
    with pytest.raises(UserError, match="no skew-normal"):
        skew_normal(50, 40, 0.0, 100)          # std above the uniform limit of [1, 100] (28.9)
    with pytest.raises(UserError, match="skewness"):
        skew_normal(50, 10, 1.2, 100)


def test_study_sla_readings():
    """SLA-(b) at the nominal p99 is the paper's latency; SLA-(a) at the shifted p99 exceeds it
    when outputs grow (expected-value model)."""
    from harness.studies.shift import _ev_latencies, make_setup
    st = make_setup()
    est, sla_a, sla_b = _ev_latencies(st.plan, st.ctx.workload)
    assert sla_a == sla_b == est.latency_s
    assert st.schedule.latency_s < st.bound_s
    _, a, b = _ev_latencies(st.plan, shifted_output(st.ctx.workload, mean_factor=1.15))
    assert a > b > sla_b


@pytest.mark.slow
def test_run_writes_tables_figure_and_summary(tmp_path):
    from harness.cli.output import write_study
    from harness.figures.shift import fig11, summary
    from harness.studies.shift import study
    tables = study(600)       # what `harness shift` writes (harness/cli/studies.py), on fewer requests
    write_study(tmp_path / "fig11", tables, {"fig11": fig11(tables["shift"], tables["tightening"])},
                {"summary.md": summary(tables)})
    for name in ("shift", "tightening", "rra_retune", "runtime_adjustment", "research_time", "redeploy"):
        assert (tmp_path / "fig11" / f"{name}.csv").exists() and (tmp_path / "fig11" / f"{name}.parquet").exists()
    assert (tmp_path / "fig11" / "fig11.png").exists() and (tmp_path / "fig11" / "fig11.pdf").exists()
    text = (tmp_path / "fig11" / "summary.md").read_text()
    assert "13%" in text and "Table 4" in text
    t = tables["tightening"]
    assert set(t["sla"]) == {"a", "b"}
    # against the paper (§8, WAA, OPT-13B, task T): 15% longer outputs need a 13% (SLA-a) /
    # 10% (SLA-b) tighter bound: (a) more than (b), each within a factor 2 of the paper's,
    # in both simulators; 30% longer need more than 15% longer; shorter outputs need none
    cont = t[(t.policy == "waa-c") & (t.axis == "mean")].set_index(["model", "sla", "value"]).cont_tightening
    for model in ("expected", "discrete-event"):
        a, b = cont[model, "a", 1.15], cont[model, "b", 1.15]
        assert 0.13 / 2 < a < 0.13 * 2 and 0.10 / 2 < b < 0.10 * 2 and b < a, (model, a, b)
        for sla in ("a", "b"):
            assert cont[model, sla, 1.3] > cont[model, sla, 1.15] and cont[model, sla, 0.7] == 0.0
    nominal = tables["shift"].query("axis == 'mean' and value == 1.0").iloc[0]
    assert nominal.ev_thr_change == pytest.approx(0, abs=1e-9)
