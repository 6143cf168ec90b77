"""Folders of local images: walking them, the vector cache, vector files, duplicates and their report."""
