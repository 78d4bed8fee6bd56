"""Flight code: codec, inference backends, raster I/O and the daemon. Never imports torch."""
