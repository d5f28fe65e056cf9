"""The processes of a run: rollout, inference and learner workers."""
