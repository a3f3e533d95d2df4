"""napari-ctfoundation: foundation autoencoders, conditional generation and
sparse-view cone-beam CT for CT volumes, in napari and headless.

Importing this package is cheap: torch, itk, diffusers and transformers are
imported lazily inside the functions that need them.
"""

__version__ = "0.1.0"
