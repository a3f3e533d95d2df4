"""Dataset layout recognisers, one per file, registered in ``dataset.base.LAYOUTS``."""
