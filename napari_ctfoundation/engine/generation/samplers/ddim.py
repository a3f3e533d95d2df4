"""DDIM (deterministic, eta = 0): the reference's sampler."""

from ..schedule import SAMPLERS


@SAMPLERS.register("ddim")
def ddim(config: dict):
    """DDIM, deterministic (eta 0), trailing timestep spacing."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(**config, timestep_spacing="trailing", set_alpha_to_one=False)
