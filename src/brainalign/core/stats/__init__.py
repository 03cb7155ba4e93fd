"""brainalign.core.stats."""
