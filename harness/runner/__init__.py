"""One runner for everything that calls a method: an isolated worker process per run
with a per-call timeout and memory cap (``isolation``), validation of a method's output
before it is timed (``validation``), and a journal, resume and output lock
(``journal``). ``attention_tasks`` holds what the worker does for the attention
workload."""
