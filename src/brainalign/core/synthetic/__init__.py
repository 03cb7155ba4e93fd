"""brainalign.core.synthetic."""
