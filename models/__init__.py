"""Torch side of the codec: transforms, entropy bottleneck, training (``cvae-train``)."""
