"""ViZDoom families: single-player scenarios, games against bots, and duels of two learners."""
