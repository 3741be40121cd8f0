"""Downstream tasks: sequential recommendation on MovieLens (and seeded synthetic data).

* ``data``: fetch/verify/cache MovieLens from registry wheels; parse atomic files.
* ``seqrec_data``: the authors' protocol (min 4 events, leave-last-out, 100 negatives).
* ``synthetic``: seeded sequences with a planted Markov structure (the default).
* ``metrics``: HR@K and NDCG@K against sampled negatives.
* ``seqrec_model`` / ``seqrec_train``: SASRec-style one-block model with pluggable
  attention; training with early stopping.
"""
