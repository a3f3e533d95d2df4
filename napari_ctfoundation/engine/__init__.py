"""Headless engine: no Qt and no napari imports anywhere below this package.

Every capability of the product is an engine function or class; the CLI and
the napari widgets are thin callers of it.
"""
