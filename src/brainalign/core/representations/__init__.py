"""brainalign.core.representations."""
