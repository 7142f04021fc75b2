"""Experiments beyond one run: sweeps, reports and reproductions."""
