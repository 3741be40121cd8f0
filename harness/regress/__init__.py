"""The performance regression gate (``python -m harness regress BASE HEAD``): paired,
interleaved timing of two exported commits (``paired_timing``, whose worker processes run
``worker_script``), the verdict statistics (``verdict``) and the gate's cases
(``gate_workload``)."""
