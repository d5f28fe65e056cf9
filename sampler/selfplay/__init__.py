"""Several policies: PBT applied to a live population, and the self-play opponent pool."""
