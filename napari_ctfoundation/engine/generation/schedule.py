"""Noise schedule (training) and the sampler registry (sampling).

Training uses diffusers' ``DDPMScheduler`` with the reference's schedule
(linear betas 0.00085 -> 0.012, 1000 steps) and eps or v prediction.
Sampling plug-ins live one per file in ``samplers/`` and build a diffusers
scheduler from the same config, so a checkpoint trained once can be sampled
with DDIM, DPM-Solver++ or ancestral DDPM.
"""

from __future__ import annotations

from typing import Any, Dict

from ..errors import ConfigError
from ..registry import Registry

SAMPLERS: Registry = Registry("sampler", "napari_ctfoundation.engine.generation.samplers")
DEFAULT_SAMPLER = "ddim"
PREDICTION_TYPES = ("epsilon", "v_prediction")


def scheduler_config(prediction_type: str = "epsilon", num_train_timesteps: int = 1000,
                     beta_start: float = 0.00085, beta_end: float = 0.012,
                     beta_schedule: str = "linear") -> Dict[str, Any]:
    aliases = {"eps": "epsilon", "epsilon": "epsilon", "v": "v_prediction", "v_prediction": "v_prediction"}
    if prediction_type not in aliases:
        raise ConfigError(f"prediction type {prediction_type!r}: use eps or v")
    if beta_schedule not in ("linear", "scaled_linear", "squaredcos_cap_v2"):
        raise ConfigError(f"beta schedule {beta_schedule!r}: use linear, scaled_linear or squaredcos_cap_v2")
    return {
        "num_train_timesteps": int(num_train_timesteps), "beta_start": float(beta_start),
        "beta_end": float(beta_end), "beta_schedule": beta_schedule,
        "prediction_type": aliases[prediction_type], "clip_sample": False,
    }


def training_scheduler(config: Dict[str, Any]):
    from diffusers import DDPMScheduler

    return DDPMScheduler(**config)


def make_sampler(name: str, config: Dict[str, Any]):
    """A fresh diffusers scheduler for sampling (they hold per-run state)."""
    return SAMPLERS.create(name, config)
