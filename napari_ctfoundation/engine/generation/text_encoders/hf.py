"""Any Hugging Face text encoder (hub id or local folder) via transformers AutoModel."""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import numpy as np

from ...errors import ConfigError
from ..text import TEXT_ENCODERS, TextEncoder


@TEXT_ENCODERS.register("hf")
class HFTextEncoder(TextEncoder):
    """transformers AutoTokenizer + AutoModel; last hidden state as tokens (e.g. a CXR-BERT)."""

    name = "hf"

    def __init__(self, model: str = "", max_tokens: int = 64, device: str = "cpu") -> None:
        super().__init__(max_tokens, device)
        if not model:
            raise ConfigError("text encoder 'hf' needs a model: hf:<hub id or folder>")
        from transformers import AutoModel, AutoTokenizer

        local = Path(model).expanduser().is_dir()
        self.model_id = str(Path(model).expanduser().resolve()) if local else model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_id, local_files_only=local)
            self.model = AutoModel.from_pretrained(self.model_id, local_files_only=local).to(device).eval()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"text encoder hf:{model}: cannot load ({str(exc).splitlines()[0]})") from None
        self.dim = int(getattr(self.model.config, "hidden_size", 0) or getattr(self.model.config, "d_model", 0))
        if not self.dim:
            raise ConfigError(f"text encoder hf:{model}: config has no hidden_size")

    def spec(self) -> str:
        return f"hf:{self.model_id}"

    def token_embeddings(self, texts: Sequence[str]) -> List[np.ndarray]:
        import torch

        batch = self.tokenizer(list(texts), padding=True, truncation=True,
                               max_length=self.max_tokens, return_tensors="pt").to(self.device)
        with torch.no_grad():
            hidden = self.model(**batch).last_hidden_state.float().cpu().numpy()
        mask = batch["attention_mask"].cpu().numpy().astype(bool)
        return [hidden[i][mask[i]] for i in range(len(texts))]
