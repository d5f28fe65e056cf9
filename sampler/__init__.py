"""How experience is made and consumed: config, env families, shared buffers, workers, supervisor, control."""
