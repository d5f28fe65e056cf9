"""How experience is made and consumed: config, envs, shared memory, experiments, the run and its workers, self-play,
sweeps and play. No UI."""
