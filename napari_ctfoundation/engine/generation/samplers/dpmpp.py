"""DPM-Solver++ (2nd order multistep): good samples in 10-25 steps."""

from ..schedule import SAMPLERS


@SAMPLERS.register("dpmpp")
def dpmpp(config: dict):
    """DPM-Solver++ 2M multistep."""
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(**{k: v for k, v in config.items() if k != "clip_sample"},
                                       algorithm_type="dpmsolver++", solver_order=2,
                                       timestep_spacing="trailing")
