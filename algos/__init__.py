"""Pure RL algorithm pieces (spaces, distributions, normalizers, returns, models, APPO)."""
