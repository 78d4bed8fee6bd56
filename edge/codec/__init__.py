"""edge/codec"""
