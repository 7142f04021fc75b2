"""PyTorch twins of ferjax's models and the weight copy between them.

Used by the benchmarks (run as scripts from benchmarks/) and by the tests
(pytest puts benchmarks/ on the path: pyproject's pythonpath).
"""
