"""Thin entry points over `service.ImageSimilarityService`: they translate I/O and nothing else."""
