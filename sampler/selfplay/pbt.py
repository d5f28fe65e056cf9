"""The PBT worker: applies algos/pbt.py's decisions to a live population, inside the supervisor's loop.

At each update it ranks the policies (the env's true objective where it reports one, else the mean
return), picks replacements, asks each source learner to publish its whole learner state into its shared
slot, and tells each replaced learner to load it with the source's hyperparameters, mutated. Every
decision is an event in RunStatus, a line in the log, and an entry of `pbt.json` in the experiment folder,
which also holds the frame count of the last update, so a resumed run keeps the population's schedule.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from algos.pbt import PbtConfig, due, mutate, replacements
from sampler.experiment.folders import write_json_atomic
from sampler.run.messages import PbtCopy, PbtPublish

log = logging.getLogger("sftui")
REPLY_TIMEOUT_SEC = 60.0
DECISIONS_KEPT = 200


class Population:
    def __init__(self, cfg: PbtConfig, folder: Path, seed: int):
        self.cfg = cfg
        self.path = Path(folder) / "pbt.json"
        self.rng = np.random.default_rng(seed + 7)
        saved = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.last_update = int(saved.get("last_update_env_frames", 0))
        self.decisions: list[dict] = list(saved.get("decisions", []))
        self.busy = False

    def due(self, env_frames: int) -> bool:
        return not self.busy and due(env_frames, self.last_update, self.cfg)

    async def update(self, supervisor: Any, env_frames: int) -> list[dict]:
        """One population update; returns the decisions taken (none when no gap is large enough). The caller
        sets `busy` when it schedules the update, so no second one is scheduled meanwhile."""
        try:
            return await self._update(supervisor, env_frames)
        finally:
            self.busy = False

    async def _update(self, supervisor: Any, env_frames: int) -> list[dict]:
        policies = supervisor.board.policies
        objectives = {p: (s.status.true_objective if s.status.true_objective is not None else s.status.episode_return)
                      for p, s in enumerate(policies)}
        chosen = replacements(objectives, self.cfg, self.rng)
        self.last_update = env_frames
        taken = []
        if chosen:
            published = {}
            for source in sorted({r.source for r in chosen}):
                published[source] = await supervisor.ask_learner(source, PbtPublish, REPLY_TIMEOUT_SEC)
            for r in chosen:
                hyperparameters, changed = mutate(policies[r.source].status.hyperparameters, self.cfg, self.rng)
                ask = functools.partial(PbtCopy, source=r.source, hyperparameters=hyperparameters)
                reply = await supervisor.ask_learner(r.policy, ask, REPLY_TIMEOUT_SEC)
                decision = {
                    "time": time.time(), "env_frames": env_frames, "policy": r.policy, "source": r.source,
                    "objectives": [objectives[r.policy], objectives[r.source]], "gap": r.gap,
                    "mutated": {k: list(v) for k, v in changed.items()}, "version": reply.version,
                    "digest_before": reply.digest_before, "digest_after": reply.digest_after,
                    "source_digest": published[r.source].digest,
                }
                taken.append(decision)
                text = (f"p{r.policy} <- p{r.source} (objective {objectives[r.policy]:.3g} vs "
                        f"{objectives[r.source]:.3g}); mutated: "
                        + (", ".join(f"{k} {a:.3g} -> {b:.3g}" for k, (a, b) in changed.items()) or "nothing"))
                supervisor.board.event("pbt", text)
                log.info("pbt: %s", text)
                policies[r.policy].forget_episodes()
                if supervisor.pool is not None:
                    supervisor.pool.copy_rating(r.policy, r.source)
                policies[r.policy].status.pbt_last = (f"{time.strftime('%H:%M:%S')} <- p{r.source}"
                                                      + (f": {', '.join(changed)}" if changed else ""))
        else:
            log.info("pbt: no replacement at %s env frames (objectives %s)", f"{env_frames:,}",
                     {p: None if v is None else round(v, 3) for p, v in objectives.items()})
        self.decisions = (self.decisions + taken)[-DECISIONS_KEPT:]
        write_json_atomic(self.path, {"last_update_env_frames": self.last_update, "decisions": self.decisions})
        return taken

