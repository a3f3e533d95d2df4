"""Ancestral DDPM (stochastic, slow; noise from the run's seeded generator)."""

from ..schedule import SAMPLERS


@SAMPLERS.register("ddpm")
def ddpm(config: dict):
    """DDPM ancestral sampling (use many steps)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**config, timestep_spacing="trailing")
