"""Watching a checkpoint: the player, the Enjoy screen's player process, and videos."""
