"""Each method states its own analytic cost (``MethodSpec.cost``): FLOPs grow with L as the
entry's declared time exponent, a backward pass triples the FLOPs, causal work is at most
bidirectional work, and the workload reports what the entry says."""

from __future__ import annotations

import math

import pytest

from harness.workloads import attention as workload
from impls import registry
from impls.costs import CostQuery, fallback_cost

BUILTINS = [s for s in registry.builtin_methods()]


@pytest.mark.parametrize("spec", BUILTINS, ids=[s.name for s in BUILTINS])
def test_every_builtin_states_its_cost_and_it_scales_as_declared(spec):
    assert spec.cost is not None, f"{spec.name} has no cost model"
    causal = spec.capabilities.causal
    small, large = (
        spec.cost(CostQuery(n, 128, causal=causal, hp=spec.hyperparameters)) for n in (2**16, 2**18)
    )
    slope = math.log(large.flops / small.flops) / math.log(4)
    assert abs(slope - spec.time_exponent) < 0.1, (spec.name, slope)
    traffic = math.log(large.traffic_bytes / small.traffic_bytes) / math.log(4)
    assert traffic <= spec.memory_exponent + 1.05  # the oracle streams its (L, L) scores
    both = spec.cost(CostQuery(4096, 128, causal=causal, backward=True, hp=spec.hyperparameters))
    one = spec.cost(CostQuery(4096, 128, causal=causal, hp=spec.hyperparameters))
    assert both.flops == pytest.approx(3 * one.flops)
    assert both.traffic_bytes > one.traffic_bytes and both.working_bytes >= one.working_bytes
    if spec.exact:  # a causal score matrix is a triangle (chunked kernels may do more)
        bidi = spec.cost(CostQuery(4096, 128, causal=False, hp=spec.hyperparameters))
        assert one.flops <= bidi.flops


def test_exact_attention_flops_are_the_textbook_count():
    (sdpa,) = [s for s in BUILTINS if s.name == "sdpa"]
    n, d = 1024, 64
    assert sdpa.cost(CostQuery(n, d, causal=False)).flops == 4 * n * n * d
    assert sdpa.cost(CostQuery(n, d, causal=True)).flops == 4 * (n * (n + 1) / 2) * d
    # compulsory traffic: q, k, v read and the output written, float32
    assert sdpa.cost(CostQuery(n, d)).traffic_bytes == 4 * 4 * n * d


def test_the_workload_reports_the_entrys_cost_and_what_a_row_achieved():
    plan = workload.make_plan([128], methods=["linear", "lisa W=16"], passes=["forward"])
    for variant in plan.variants:
        case = workload.Case(variant.label, 128)
        row = workload.run_case(variant, case, repeats=3, measure_memory=False)
        cost = workload.analytic_cost(variant, case)
        assert row["analytic_flops"] == cost.flops > 0
        assert row["analytic_bytes"] == cost.working_bytes
        assert row["achieved_gflops"] == pytest.approx(cost.flops / row["median_s"] / 1e9)


def test_an_entry_without_a_cost_gets_the_generic_estimate():
    quadratic = fallback_cost(CostQuery(4096, 64), memory_exponent=2.0)
    linear = fallback_cost(CostQuery(4096, 64), memory_exponent=1.0)
    assert quadratic.working_bytes > 10 * linear.working_bytes
    assert quadratic.flops == linear.flops  # exact-attention work is assumed
