"""An example package of one's own models for the pipeline (docs/custom-models.md)."""
