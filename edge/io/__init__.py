"""edge/io"""
