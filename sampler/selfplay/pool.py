"""The self-play opponent pool: frozen snapshots of the policies, seated against the learning policies.

The supervisor owns the pool (`OpponentPool`): every `pool.snapshot_every_env_steps` env frames it asks each
learner to write a frozen copy of its model into the experiment's `pool/` folder, and it keeps the index,
`pool/pool.json`: the members (snapshots and the explicit `pool.checkpoints`), every player's Elo rating, and
the frame count of the last snapshot, so a resumed run goes on with the same pool and ratings.

Rollout workers seat members (`PoolSeating`): at the start of each episode of each opponent seat (every seat
but seat 0, which always plays a learning policy) a member plays it with probability `pool.seat_probability`,
drawn uniformly or, with `pool.opponent_sampling` pfsp, the more often the more the learning policies lose to it
by the ratings in pool.json. A member acts inside the rollout worker, from its file, with no learner and no
inference worker: its steps carry policy id -1, so no learner trains on them and no policy's statistics count
them. Each finished game is reported to the supervisor, which rates it (algos/elo.py).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from algos.elo import INITIAL_RATING, pfsp_weights, rate_game
from sampler.errors import ConfigError, ExperimentError
from sampler.experiment import checkpoints
from sampler.experiment.folders import write_json_atomic
from sampler.run.messages import PoolSnapshot
from sampler.run.workers.acting import Actor

log = logging.getLogger("sftui")
POOL_POLICY = -1  # the policy id a pool member's steps carry
REFRESH_SEC = 2.0  # how often a rollout worker looks for a changed pool.json
SNAPSHOT_TIMEOUT_SEC = 60.0


def index_path(folder: Path) -> Path:
    return Path(folder) / "pool" / "pool.json"


def policy_name(policy: int) -> str:
    return f"p{policy}"


def checkpoint_name(path: Path) -> str:
    """A short, readable name for an explicit checkpoint: EXPERIMENT/pK/FILE for one in an experiment folder."""
    parts = path.parts
    if len(parts) >= 4 and parts[-3] == "checkpoints":
        return f"{parts[-4]}/{parts[-2]}/{path.stem}"
    return path.stem


def check_checkpoints(cfg, spec_dicts: dict) -> list[dict]:
    """The explicit pool checkpoints as members; an unreadable one, or one made for another env or model, is
    refused with one line naming it."""
    members = []
    for i, given in enumerate(cfg.pool.checkpoints):
        path = Path(given).expanduser().resolve()
        try:
            payload = checkpoints.load(path)
            checkpoints.check_compatible(payload, path, cfg.env.name, spec_dicts["model"], spec_dicts["obs"],
                                         spec_dicts["action"])
        except ExperimentError as e:
            raise ConfigError(f"pool.checkpoints[{i}]: {e}") from None
        members.append({"name": checkpoint_name(path), "path": str(path), "kind": "checkpoint",
                        "policy": payload.get("policy"), "version": payload.get("version"),
                        "env_frames": payload.get("env_frames")})
    names = [m["name"] for m in members]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"pool.checkpoints: two checkpoints are named {name!r}; list each file once")
    return members


class OpponentPool:
    """The supervisor's side: snapshots, the member list, ratings and seating counts."""

    def __init__(self, cfg, folder: Path, num_policies: int, explicit: list[dict]):
        self.cfg = cfg.pool
        self.folder = Path(folder)
        self.dir = self.folder / "pool"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = index_path(self.folder)
        saved = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.num_policies = num_policies
        self.last_snapshot = int(saved.get("last_snapshot_env_frames", 0))
        self.ratings: dict[str, float] = {k: float(v) for k, v in saved.get("ratings", {}).items()}
        self.games: dict[str, int] = {k: int(v) for k, v in saved.get("games", {}).items()}
        snapshots = self._saved_snapshots(saved.get("members", []))
        self.members: list[dict] = explicit + snapshots  # explicit checkpoints follow the config of this run
        for name in [policy_name(p) for p in range(num_policies)] + [m["name"] for m in self.members]:
            self.ratings.setdefault(name, INITIAL_RATING)
            self.games.setdefault(name, 0)
        self.opponent_seats = int(saved.get("opponent_seats", 0))
        self.pool_seats = int(saved.get("pool_seats", 0))
        self.busy = False
        self.dirty = False
        self.write()

    def _saved_snapshots(self, saved: list[dict]) -> list[dict]:
        """The snapshots pool.json lists, found in this folder's pool/, where they are always written. pool.json
        names them by absolute path, so a folder that was moved or copied names the old place: each is looked
        for here by its file name (a copy would otherwise play, and trim, the original folder's files). One whose
        file is gone is dropped."""
        found = []
        for member in saved:
            if member.get("kind") != "snapshot":
                continue
            path = self.dir / Path(member["path"]).name
            if path.exists():
                found.append({**member, "path": str(path)})
        return found

    # ---- games ------------------------------------------------------------------------------------

    def record(self, game: list[tuple[str, float]]) -> None:
        known = [(name, score) for name, score in game if name in self.ratings]
        if len(known) < 2:
            return  # e.g. a member dropped from the pool while its last game was being played
        self.ratings = rate_game(self.ratings, known, self.cfg.elo_k)
        for name, _ in known:
            self.games[name] = self.games.get(name, 0) + 1
        self.dirty = True

    def count_seats(self, opponent: int, pool: int) -> None:
        self.opponent_seats += opponent
        self.pool_seats += pool
        self.dirty = True

    def copy_rating(self, policy: int, source: int) -> None:
        """PBT made `policy` a copy of `source`: it plays as well as the source, so it takes its rating."""
        self.ratings[policy_name(policy)] = self.ratings[policy_name(source)]
        self.dirty = True

    # ---- snapshots --------------------------------------------------------------------------------

    def due(self, env_frames: int) -> bool:
        every = self.cfg.snapshot_every_env_steps
        return bool(every) and not self.busy and env_frames - self.last_snapshot >= every

    async def snapshot(self, supervisor: Any, env_frames: int) -> list[str]:
        """Freezes every policy into the pool; returns the new members' names. The caller sets `busy`."""
        try:
            replies = []
            try:
                for policy in range(self.num_policies):
                    ask = functools.partial(PoolSnapshot, directory=str(self.dir), env_frames=env_frames)
                    replies.append(await supervisor.ask_learner(policy, ask, SNAPSHOT_TIMEOUT_SEC))
            except BaseException:
                for reply in replies:  # all policies join together or none does
                    Path(reply.path).unlink(missing_ok=True)
                raise
            added = []
            for policy, reply in enumerate(replies):
                name = Path(reply.path).stem
                self.members = [m for m in self.members if m["name"] != name]
                self.members.append({"name": name, "path": reply.path, "kind": "snapshot", "policy": policy,
                                     "version": reply.version, "env_frames": env_frames, "time": time.time()})
                self.ratings[name] = self.ratings[policy_name(policy)]  # a frozen copy starts where its policy is
                self.games[name] = 0
                added.append(name)
            self.last_snapshot = env_frames
            self._trim()
            self.write()
            return added
        finally:
            self.busy = False

    def _trim(self) -> None:
        snapshots = [m for m in self.members if m["kind"] == "snapshot"]
        for old in snapshots[:max(0, len(snapshots) - self.cfg.max_snapshots)]:
            self.members.remove(old)
            Path(old["path"]).unlink(missing_ok=True)
            self.ratings.pop(old["name"], None)
            self.games.pop(old["name"], None)

    # ---- the record -------------------------------------------------------------------------------

    def write(self) -> None:
        write_json_atomic(self.path, {
            "members": self.members, "ratings": self.ratings, "games": self.games,
            "last_snapshot_env_frames": self.last_snapshot,
            "opponent_seats": self.opponent_seats, "pool_seats": self.pool_seats,
        })
        self.dirty = False

    def status(self) -> dict:
        members = [{"name": m["name"], "kind": m["kind"], "games": self.games.get(m["name"], 0),
                    "rating": round(self.ratings.get(m["name"], INITIAL_RATING), 1)} for m in self.members]
        return {"members": members, "opponent_seats": self.opponent_seats, "pool_seats": self.pool_seats,
                "seat_probability": self.cfg.seat_probability, "last_snapshot_env_frames": self.last_snapshot}

    def rating(self, policy: int) -> float:
        return self.ratings.get(policy_name(policy), INITIAL_RATING)


class PoolSeating:
    """A rollout worker's side: which member plays an opponent seat, and the members' models, loaded once."""

    def __init__(self, cfg, folder: Path, model_factory, seed: int):
        self._actor_class = Actor
        self.path = index_path(folder)
        self.probability = cfg.pool.seat_probability
        self.pfsp = cfg.pool.opponent_sampling == "pfsp"
        self.num_policies = cfg.sampler.num_policies
        self.weights: dict[str, float] = {}  # pfsp: each member's chance
        self.model_factory = model_factory
        self.rng = np.random.default_rng(seed)
        self.members: dict[str, str] = {}  # name -> path
        self.actors: dict[str, Any] = {}
        self._mtime: float | None = None
        self._checked = 0.0

    def refresh(self, in_use) -> None:
        """Reads pool.json again when it changed; models of members gone from it are dropped once unseated
        (`in_use()`: the members seated now, asked only when pool.json changed: this runs every loop turn)."""
        now = time.monotonic()
        if now - self._checked < REFRESH_SEC:
            return
        self._checked = now
        try:
            mtime = self.path.stat().st_mtime
            if mtime == self._mtime:
                return
            index = json.loads(self.path.read_text())
            members = index["members"]
        except (OSError, ValueError, KeyError):
            return  # being replaced, or not written yet: look again later
        self._mtime = mtime
        self.members = {m["name"]: m["path"] for m in members}
        if self.pfsp:
            ratings = index.get("ratings", {})
            learners = [ratings.get(policy_name(p), INITIAL_RATING) for p in range(self.num_policies)]
            chances = pfsp_weights(float(np.mean(learners)), [ratings.get(n, INITIAL_RATING) for n in self.members])
            self.weights = dict(zip(self.members, chances, strict=True))
        seated = in_use()
        for name in list(self.actors):
            if name not in self.members and name not in seated:
                del self.actors[name]

    def draw(self) -> str | None:
        """A member for an opponent seat's next episode, or None for the seat's mapped learning policy."""
        if not self.members or self.rng.random() >= self.probability:
            return None
        names = list(self.members)
        if self.pfsp:  # a member dropped as unreadable leaves the others' chances to be renormalized
            chances = np.array([self.weights.get(name, 0.0) for name in names])
            name = names[self.rng.choice(len(names), p=chances / chances.sum())]
        else:
            name = names[self.rng.integers(len(names))]
        return name if self.actor(name) is not None else None

    def actor(self, name: str):
        actor = self.actors.get(name)
        if actor is None and name in self.members:
            try:
                payload = checkpoints.load(Path(self.members[name]))
            except ExperimentError as e:  # removed by the trim a moment ago, or unreadable
                log.warning("pool member %s not seated: %s", name, e)
                self.members.pop(name, None)
                return None
            model = self.model_factory()
            model.load_state_dict(payload["learner"]["model"])
            actor = self.actors[name] = self._actor_class(POOL_POLICY, model, None, _cpu())
        return actor


def _cpu():
    import torch

    return torch.device("cpu")
