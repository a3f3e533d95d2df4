"""Text-encoder plug-ins, one per file (see ``generation.text``)."""
