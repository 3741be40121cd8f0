"""Harness: workloads, measurement, reports and the command line (``python -m harness``)."""
