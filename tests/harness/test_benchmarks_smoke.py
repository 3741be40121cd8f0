"""Every asv benchmark imports and runs its smallest case, so the suite never rots."""

from __future__ import annotations

import inspect
import itertools

from benchmarks import attention_scaling


def _benchmark_classes(module):
    return [
        c
        for _, c in inspect.getmembers(module, inspect.isclass)
        if c.__module__ == module.__name__ and hasattr(c, "params")
    ]


def test_every_benchmark_runs_its_smallest_case():
    ran = 0
    for cls in _benchmark_classes(attention_scaling):
        for combo in itertools.product(*cls.params):
            if combo[-1] != min(cls.params[-1]):
                continue
            bench = cls()
            bench.setup(*combo)
            for name in dir(bench):
                if name.startswith(("time_", "peakmem_", "track_")):
                    result = getattr(bench, name)(*combo)
                    if name.startswith("track_"):
                        assert result > 0
                    ran += 1
    assert ran >= 3 * len(attention_scaling.METHODS)
