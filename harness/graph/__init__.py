"""Heterogeneous-graph training (``python -m harness graph``): the HEP propagation model
(``hep_model``), its training with any sampler x estimator (``hep_training``), node
classification and link-prediction metrics (``hetero_metrics``), and the interleaved
per-epoch comparison against exhaustive aggregation (``epoch_comparison``)."""
