"""Envs: the contract every family meets, vector envs for batched sampling, agent -> policy mapping."""
