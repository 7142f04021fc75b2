"""Datasets ferjax reads: builders, loaders and preprocessing."""
