"""Weights from other frameworks as ferjax runs; models know none of this."""
