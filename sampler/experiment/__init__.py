"""Experiment folders: preparing one from a cfg, checkpoints, and the control socket of a live run."""
