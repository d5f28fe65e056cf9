"""A live run: the supervisor, its commands, worker handles, stats, status publishing and clean-up."""
