"""brainalign.core.brain."""
