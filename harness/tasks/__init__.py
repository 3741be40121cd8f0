"""Synthetic tasks that probe what an attention method can learn (not just how fast it
runs): :mod:`harness.tasks.associative_recall` (multi-query associative recall, MQAR)."""
