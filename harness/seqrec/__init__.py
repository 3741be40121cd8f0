"""Sequential recommendation (``python -m harness seqrec``) on MovieLens or seeded data.

* ``sequences``: the authors' protocol (min 4 events, leave-last-out, 100 negatives).
* ``synthetic_sequences``: seeded sequences with a planted Markov structure (the default).
* ``ranking_metrics``: HR@K and NDCG@K against sampled negatives (non-finite = miss).
* ``sasrec`` / ``training``: SASRec-style one-block model with pluggable attention;
  training with early stopping.

Fetching, verifying and caching the MovieLens files lives in ``harness.datasets.cache``.
"""
