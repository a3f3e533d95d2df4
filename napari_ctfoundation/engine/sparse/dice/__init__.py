"""DiCE (DeepSparse) in PyTorch: network, checkpoints, inference; training in :mod:`..train`."""

from .config import DiCEConfig  # noqa: F401
