"""The satellite-ground contract: spectral transform, tile bitstream, entropy tables, range coder, packets, sealing."""
