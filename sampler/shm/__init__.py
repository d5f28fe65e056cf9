"""Shared memory between a run's processes: trajectory buffers, weights, index-only channels."""
