"""brainalign.core.timing."""
