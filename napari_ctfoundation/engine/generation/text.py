"""Report text -> token embeddings for cross-attention (text-encoder registry).

Encoders are frozen. ``encode(texts)`` returns ``(tokens, mask)``: float32
``(B, max_tokens, dim)`` token embeddings (padded with zeros / truncated to
``max_tokens``) and a ``(B, max_tokens)`` 0/1 mask of real tokens. Plug-ins
live one per file in ``text_encoders/``; ``load_text_encoder(spec)`` takes a
registry name (``minilm``), ``hf:<hub id or folder>``, or a bare folder.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from ..errors import ConfigError
from ..registry import Registry

TEXT_ENCODERS: Registry = Registry("text encoder", "napari_ctfoundation.engine.generation.text_encoders")
DEFAULT_TEXT_ENCODER = "minilm"
DEFAULT_MAX_TOKENS = 64


class TextEncoder(ABC):
    name: str = "?"
    dim: int = 0

    def __init__(self, max_tokens: int = DEFAULT_MAX_TOKENS, device: str = "cpu") -> None:
        if int(max_tokens) < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
        self.max_tokens = int(max_tokens)
        self.device = device

    @abstractmethod
    def token_embeddings(self, texts: Sequence[str]) -> List[np.ndarray]:
        """One ``(L_i, dim)`` float32 array per text (real tokens only)."""

    def encode(self, texts: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
        texts = [str(t) for t in texts]
        tokens = np.zeros((len(texts), self.max_tokens, self.dim), dtype=np.float32)
        mask = np.zeros((len(texts), self.max_tokens), dtype=np.float32)
        for i, emb in enumerate(self.token_embeddings(texts)):
            n = min(len(emb), self.max_tokens)
            tokens[i, :n] = emb[:n]
            mask[i, :n] = 1.0
        return tokens, mask

    def spec(self) -> str:
        """The string that reloads this encoder through :func:`load_text_encoder`."""
        return self.name

    def describe(self) -> Dict[str, Any]:
        return {"spec": self.spec(), "name": self.name, "dim": self.dim, "max_tokens": self.max_tokens}


def load_text_encoder(spec: str = DEFAULT_TEXT_ENCODER, max_tokens: int = DEFAULT_MAX_TOKENS,
                      device: str = "cpu") -> TextEncoder:
    spec = (spec or DEFAULT_TEXT_ENCODER).strip()
    if spec.startswith("hf:"):
        return TEXT_ENCODERS.create("hf", model=spec[3:], max_tokens=max_tokens, device=device)
    if spec in TEXT_ENCODERS:
        return TEXT_ENCODERS.create(spec, max_tokens=max_tokens, device=device)
    if Path(spec).expanduser().is_dir():
        return TEXT_ENCODERS.create("hf", model=spec, max_tokens=max_tokens, device=device)
    known = ", ".join(TEXT_ENCODERS.names())
    raise ConfigError(f"text encoder {spec!r}: not a registered name ({known}), "
                      "an 'hf:<hub id or folder>' spec, or an existing folder")
