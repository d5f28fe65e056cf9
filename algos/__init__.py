"""Pure RL algorithm pieces: spaces, distributions, returns (GAE, V-trace), encoders, cores, models, APPO."""
