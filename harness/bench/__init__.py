"""``python -m harness bench``: the scaling suite. ``pytest_suite`` runs a workload plan
through pytest-benchmark (each case in the isolated runner), ``tables`` renders the result
tables, fits and comparisons, ``plots`` the log-log figures, ``graph_family`` the graph
workload's run."""
