"""Shared, framework-light helpers (image decoding, metrics, paths) used by every layer.

Dependency direction: common <- models <- {train, export, serve} <- app.
"""
