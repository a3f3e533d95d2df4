"""Qt widgets for napari: layout and layer wiring only (engine work lives in engine/).

Shared helpers (worker runner with progress + cancel, result layers) are in
``_common``. Modules here import Qt and napari; nothing in ``engine`` may.
"""
