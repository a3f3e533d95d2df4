"""Qt widgets for napari: layout and layer wiring only (engine work lives in engine/).

Shared helpers: ``_common`` (the generator-worker job runner with progress +
cancel, result layers, the layer chooser) and ``_forms`` (form, combo, spin
box and Run/progress/status builders). Modules here import Qt and napari;
nothing in ``engine`` may.
"""
