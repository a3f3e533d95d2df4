"""Load any supported diffusers VAE with ``from_pretrained``.

The same code path serves a hub id (``black-forest-labs/FLUX.2-dev``,
``subfolder="vae"``) and a local folder written by ``save_pretrained``: the
config's ``_class_name`` picks the adapter from :data:`DIFFUSERS_CLASSES`
(one file per class in ``diffusers_classes/``).

Before anything is downloaded, :func:`locate_pretrained` settles where the
model comes from and fails in seconds with one line when it cannot: a
missing folder, a hub id absent from the local cache while
``HF_HUB_OFFLINE`` is set, an id the hub does not know, or a hub
(``HF_ENDPOINT``) that cannot be reached. Without it, the hub client retries
an unreachable host for about half a minute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import ConfigError
from ..registry import Registry
from .base import FoundationVAE

DIFFUSERS_CLASSES: Registry = Registry(
    "diffusers VAE class", "napari_ctfoundation.engine.vae.diffusers_classes"
)


HUB_PROBE_TIMEOUT_S = 10.0


def _config_name(subfolder: Optional[str]) -> str:
    return f"{subfolder.strip('/')}/config.json" if subfolder else "config.json"


def locate_pretrained(spec: str, subfolder: Optional[str] = None, what: str = "VAE") -> None:
    """Check that ``spec`` (a local folder or a hub id) can be loaded, without downloading weights.

    Raises :class:`ConfigError` with one line naming the problem and the hub's
    environment variables (``HF_HUB_OFFLINE``, ``HF_ENDPOINT``) where they matter.
    """
    where = f"{what} {spec!r}" + (f" (subfolder {subfolder!r})" if subfolder else "")
    config_name = _config_name(subfolder)
    folder = Path(spec).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{where}: a file; a diffusers model is a folder holding {config_name}")
    if folder.is_dir():
        if not (folder / config_name).is_file():
            raise ConfigError(f"{where}: the folder has no {config_name}; a diffusers model folder holds one")
        return
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(spec)
    except HFValidationError:
        raise ConfigError(f"{where}: not a registered backend, and no such folder") from None
    if isinstance(try_to_load_from_cache(spec, config_name), str):
        return  # in the local hub cache: diffusers takes it from there
    endpoint = constants.ENDPOINT
    if constants.HF_HUB_OFFLINE:
        raise ConfigError(
            f"{where}: not a registered backend, no such folder, and not in the local hub cache while "
            f"HF_HUB_OFFLINE is set; unset HF_HUB_OFFLINE to download it from {endpoint}, or pass a local folder"
        )
    _probe_hub(spec, config_name, where, endpoint)


def _probe_hub(repo_id: str, config_name: str, where: str, endpoint: str) -> None:
    """One quick metadata request instead of the download client's retries."""
    from huggingface_hub import HfApi

    try:
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    except ImportError:  # huggingface_hub < 0.24
        from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError
    try:
        info = HfApi().model_info(repo_id, timeout=HUB_PROBE_TIMEOUT_S)
    except GatedRepoError:
        return  # exists; the download says what access is missing
    except RepositoryNotFoundError:
        raise ConfigError(
            f"{where}: not a registered backend, no such folder, and the hub at {endpoint} has no model "
            f"{repo_id!r} (private models need HF_TOKEN; HF_ENDPOINT selects another hub)"
        ) from None
    except Exception as exc:  # connection refused, DNS, timeout, proxy: all mean "cannot reach"
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"{where}: not a registered backend, no such folder, and the hub at {endpoint} cannot be reached "
            f"({reason}); check the network or HF_ENDPOINT, or pass a local folder (HF_HUB_OFFLINE=1 reads "
            "only the local cache)"
        ) from None
    files = {s.rfilename for s in (info.siblings or [])}
    if files and config_name not in files:
        hint = "" if "/" in config_name else " (try --subfolder vae)"
        raise ConfigError(f"{where}: the hub model {repo_id!r} has no {config_name}{hint}")


def load_diffusers_vae(
    spec: str, subfolder: Optional[str] = None, device: str = "cpu", dtype=None
) -> FoundationVAE:
    locate_pretrained(spec, subfolder)
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
