"""A run's model as a file other runtimes read: ONNX or serialized StableHLO."""
