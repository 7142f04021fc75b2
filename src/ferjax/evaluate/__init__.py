"""Evaluating a trained run: one home for what ``ferjax eval`` and ``ferjax
calibrate`` compute and draw.

- ``views``: the test-time views by name (none, ten-crop); the one module
  that training and the config checks use too, so it sits below them.
- ``run_evaluation``: a run's checkpoint, or an ensemble, on its evals or any
  split (records; ``commands.tables`` prints them).
- ``calibrate``: a checkpoint's softmax temperature, fitted and stored.
- ``class_saliency``: the mean saliency map of each class over a split.
- ``calibration_plots``, ``saliency_plots``: their figures.

This file imports nothing, so that importing ``views`` stays light.
"""
