"""The 3D segmenters (MONAI SegResNet / UNet), their config and checkpoints.

A trained model is a folder: ``config.json`` (everything needed to rebuild
and to preprocess: architecture, classes, spacing, patch, HU window) and
``model.safetensors``. ``train_state.pt`` beside them holds the optimiser
and epoch so training resumes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple, Union

import numpy as np

from ..errors import ConfigError

ARCHS = ("segresnet", "unet")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class SegConfig:
    """Training and preprocessing settings (tiny CPU defaults).

    ``classes`` ``{organ id: name}`` (TotalSegmentator v2 ids) to segment,
    ``spacing_xyz`` mm of the training grid, ``patch_zyx`` voxels,
    ``hu_window`` (HU) for intensity scaling, ``p_recon`` the probability a
    training sample is the VAE reconstruction instead of the CT. Raises
    :class:`ConfigError` for an unknown arch, a probability outside [0, 1],
    patch sizes not multiples of 4, or an empty HU window.
    """

    classes: Dict[int, str] = field(default_factory=lambda: {5: "liver", 1: "spleen", 6: "stomach"})
    arch: str = "segresnet"
    init_filters: int = 8
    spacing_xyz: Tuple[float, float, float] = (3.0, 3.0, 3.0)
    patch_zyx: Tuple[int, int, int] = (16, 64, 64)
    hu_window: Tuple[float, float] = (-175.0, 250.0)  # abdominal window of the reference code
    p_recon: float = 0.0  # probability a training sample is the VAE reconstruction
    epochs: int = 20
    steps_per_epoch: int = 10
    batch_size: int = 2
    lr: float = 3e-3
    fg_fraction: float = 0.67  # share of patches centred on a foreground voxel (nnU-Net: 1/3)
    seed: int = 0

    def __post_init__(self) -> None:
        self.classes = {int(k): str(v) for k, v in self.classes.items()}
        self.spacing_xyz = tuple(float(s) for s in self.spacing_xyz)
        self.patch_zyx = tuple(int(p) for p in self.patch_zyx)
        self.hu_window = tuple(float(h) for h in self.hu_window)
        if self.arch not in ARCHS:
            raise ConfigError(f"--arch {self.arch!r}: use one of {', '.join(ARCHS)}")
        if not 0.0 <= self.p_recon <= 1.0:
            raise ConfigError(f"--p {self.p_recon}: a probability lies in [0, 1]")
        if any(p % 4 for p in self.patch_zyx):
            raise ConfigError(f"--patch {self.patch_zyx}: each size must be a multiple of 4")
        if not self.hu_window[0] < self.hu_window[1]:
            raise ConfigError(f"HU window {self.hu_window}: LO must be below HI")
        if self.epochs < 1 or self.steps_per_epoch < 1 or self.batch_size < 1:
            raise ConfigError("epochs, steps per epoch and batch size must be at least 1")

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def class_names(self) -> List[str]:
        return [self.classes[k] for k in sorted(self.classes)]

    def to_json(self) -> dict:
        d = asdict(self)
        d["classes"] = {str(k): v for k, v in sorted(self.classes.items())}
        return d

    @classmethod
    def from_json(cls, d: dict) -> "SegConfig":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def normalise(self, hu: np.ndarray) -> np.ndarray:
        lo, hi = self.hu_window
        return np.clip((hu - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def build_model(config: SegConfig):
    from monai.networks.nets import SegResNet, UNet

    out = config.n_classes + 1
    f = config.init_filters
    if config.arch == "segresnet":
        # three levels (4x down): enough context at 3 mm, small enough for a CPU
        return SegResNet(spatial_dims=3, init_filters=f, in_channels=1, out_channels=out,
                         blocks_down=(1, 2, 2), blocks_up=(1, 1), norm=("GROUP", {"num_groups": min(8, f)}))
    return UNet(spatial_dims=3, in_channels=1, out_channels=out, channels=(f, 2 * f, 4 * f),
                strides=(2, 2), num_res_units=1, norm="instance")


def save_model(model, config: SegConfig, folder: Union[str, os.PathLike], extra: dict = None) -> Path:
    from safetensors.torch import save_file

    from ..batch.runner import atomic_write_text

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".tmp-{WEIGHTS_FILE}"
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, out / WEIGHTS_FILE)
    atomic_write_text(out / CONFIG_FILE, json.dumps({**config.to_json(), **(extra or {})}, indent=2))
    return out


def load_model(folder: Union[str, os.PathLike], device: str = "cpu"):
    """-> (model in eval mode, SegConfig, the config dict as saved).

    ``folder`` is what :func:`train_segmenter` wrote. Raises
    :class:`ConfigError` for a folder without ``config.json`` and weights,
    or weights that do not fit the saved config.
    """
    from ..errors import CTFoundationError
    from ..read_guard import build_checked, load_weights, read_json_object

    folder = Path(folder)
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise ConfigError(f"{folder}: not a segmentation model folder (needs {CONFIG_FILE} and {WEIGHTS_FILE})")

    raw = read_json_object(folder / CONFIG_FILE, "segmentation model config")
    try:
        config = SegConfig.from_json(raw)
    except CTFoundationError:
        raise
    except Exception as exc:  # wrong types in a damaged config.json
        raise ConfigError(f"{folder / CONFIG_FILE}: invalid config ({type(exc).__name__}: {exc})") from None
    model = build_checked(lambda: build_model(config), folder / WEIGHTS_FILE, folder / CONFIG_FILE, "segmentation")
    try:
        model.load_state_dict(load_weights(folder / WEIGHTS_FILE), strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"{folder}: weights do not fit the saved config ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval(), config, raw
