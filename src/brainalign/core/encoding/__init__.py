"""brainalign.core.encoding."""
