"""Load any supported diffusers VAE with ``from_pretrained``.

The same code path serves a hub id (``black-forest-labs/FLUX.2-dev``,
``subfolder="vae"``) and a local folder written by ``save_pretrained``: the
config's ``_class_name`` picks the adapter from :data:`DIFFUSERS_CLASSES`
(one file per class in ``diffusers_classes/``).
"""

from __future__ import annotations

from typing import Optional

from ..errors import ConfigError
from ..registry import Registry
from .base import FoundationVAE

DIFFUSERS_CLASSES: Registry = Registry(
    "diffusers VAE class", "napari_ctfoundation.engine.vae.diffusers_classes"
)


def load_diffusers_vae(
    spec: str, subfolder: Optional[str] = None, device: str = "cpu", dtype=None
) -> FoundationVAE:
    import diffusers

    try:
        config = diffusers.AutoencoderKL.load_config(spec, subfolder=subfolder)  # any ConfigMixin reads config.json
    except (OSError, ValueError) as exc:
        where = f"{spec}" + (f" (subfolder {subfolder!r})" if subfolder else "")
        raise ConfigError(
            f"VAE {where!r}: not a registered backend, not a local diffusers folder "
            f"with config.json, and not loadable from the hub ({str(exc).splitlines()[0]})"
        ) from None
    class_name = config.get("_class_name")
    if class_name not in DIFFUSERS_CLASSES:
        raise ConfigError(
            f"VAE {spec!r}: diffusers class {class_name!r} is not supported; "
            f"supported: {', '.join(DIFFUSERS_CLASSES.names())}"
        )
    adapter = DIFFUSERS_CLASSES.get(class_name)
    model_cls = getattr(diffusers, class_name)
    model = model_cls.from_pretrained(spec, subfolder=subfolder, torch_dtype=dtype)
    model = model.eval().requires_grad_(False).to(device)
    return adapter(model, spec=spec, subfolder=subfolder, device=device, dtype=dtype)
