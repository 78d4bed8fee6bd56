"""Raster reading (the only rasterio user on the edge) and tiling."""
