"""Ground decoder: CCSDS packets back to GeoTIFF (imports cvae.edge.codec, never cvae.edge.daemon)."""
