"""VAE backends, one file each; every module registers itself on import."""
