"""Sampler plug-ins, one per file (see ``generation.schedule``)."""
