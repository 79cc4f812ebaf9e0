"""The network layer (issue 14 moves components, decoder, encoders, model and config here).

- :mod:`.port_weights` loads the public PyTorch port's converted RefineNet-101 VOC weights.
"""
