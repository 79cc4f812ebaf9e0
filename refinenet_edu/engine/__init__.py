"""The engine: running a network on data.

Devices and precision (:mod:`.runtime`), the training loop (:mod:`.loop`),
evaluation and its metrics (:mod:`.evaluation`, :mod:`.metrics`), fast
prediction (:mod:`.inference`), checkpoints and provenance records. It
imports the network (:mod:`refinenet_edu.nn`) and the data
(:mod:`refinenet_edu.datasets`), never the experiments, figures or tools
built on it.
"""
