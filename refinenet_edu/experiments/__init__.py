"""Experiments: the paper's comparisons, measured.

The ablation's variants and runner, its results file, the statistics over
seeds (:mod:`.statistics`) and the encoder pretraining that stands in for
ImageNet (:mod:`.pretraining`). Built on :mod:`refinenet_edu.engine`.
"""
