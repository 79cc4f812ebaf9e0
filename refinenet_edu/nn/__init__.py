"""The network: the first layer of the package, which imports no other layer.

- :mod:`.components`: the building blocks (paper Sec. 3.2, Fig. 3(a)-(d)): RCU, adaptive convolutions,
  multi-resolution fusion, chained residual pooling, the RefineNet block;
- :mod:`.encoders`: the ResNet encoders and their four taps (1/4 .. 1/32);
- :mod:`.config`: :class:`~.config.RefineNetConfig` and the named presets, as data (no torchvision);
- :mod:`.model`: :class:`~.model.RefineNet`, the cascades of Fig. 2(c) and Fig. 7, :func:`~.model.build_refinenet`;
- :mod:`.summary`: parameters, per-block table and FLOPs of a network;
- :mod:`.port_weights` loads the public PyTorch port's converted RefineNet-101 VOC weights.
"""
