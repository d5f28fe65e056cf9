"""Sweeps: many experiments from one file, run on local processes or a Ray cluster."""
