"""Helpers for tests and examples: builders of tiny but real model files.

See :mod:`reconciler.testing.models`.
"""
