"""Enjoy: a checkpoint's policy playing its env with evaluation settings, one step at a time.

`Player` loads an experiment's config and one checkpoint (model, observation normalizer, value
normalizer), builds one env of the experiment's family and acts in it, carrying the recurrent state
across steps and zeroing it between episodes, as training does. `sftui enjoy` and the app's Enjoy
screen drive it; the screen runs it in its own process (`sampler.play.process`).

Evaluation settings: Doom runs at frameskip 1 with each action repeated `frameskip` times, so every
tic is a frame and a video plays smoothly; other families run as they trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from algos.models import make_actor_critic
from algos.spaces import obs_specs_to_dict
from sampler.config.build import build_config, read_cfg_file
from sampler.envs.contract import EnvContext
from sampler.envs.families.registry import family_for, make_env
from sampler.envs.mapping import make_policy_mapping
from sampler.errors import ExperimentError, SftuiError
from sampler.experiment import checkpoints


@dataclass
class StepResult:
    frames: list[np.ndarray]  # HxWx3 uint8, one per env frame shown (several when the action repeats)
    action: Any
    value: float  # the value estimate before the step, in raw reward units
    reward: float
    episode_return: float  # so far, raw units; the finished episode's total when done
    episode_step: int  # agent steps into the episode (frames = steps x frameskip)
    done: bool


@dataclass
class Episode:
    index: int
    episode_return: float
    length: int  # agent steps
    frames: int  # env frames


def resolve_checkpoint(folder: Path, policy: int, which: str = "latest") -> Path:
    """latest | best | a path -> the checkpoint file, or a clear error when there is none."""
    if which == "latest":
        path = checkpoints.latest_checkpoint(folder, policy)
        best = checkpoints.policy_dir(folder, policy) / "best.pt"
        if path is None and best.exists():
            path = best
    elif which == "best":
        path = checkpoints.policy_dir(folder, policy) / "best.pt"
        if not path.exists():
            raise ExperimentError(f"{folder.name}: policy {policy} has no best.pt yet; use --checkpoint latest")
    else:
        path = Path(which)
        if not path.is_absolute() and not path.exists():
            path = folder / which
        if not path.exists():
            raise ExperimentError(f"{which}: no such checkpoint")
    if path is None:
        raise ExperimentError(f"{folder.name}: no checkpoint yet for policy {policy}; "
                              "let it train, or press s on its dashboard (`sftui save` from a shell)")
    return path


def next_newest(folder: Path, policy: int, bad: Path) -> Path | None:
    """The newest periodic checkpoint older than `bad`: what to offer when `bad` cannot be read."""
    found = checkpoints.list_checkpoints(folder, policy)
    older = [p for p in found if p != bad and (bad not in found or found.index(p) < found.index(bad))]
    return older[-1] if older else None


def load_checkpoint(folder: Path, policy: int, path: Path) -> dict:
    try:
        return checkpoints.load(path)
    except ExperimentError as e:
        fallback = next_newest(folder, policy, path)
        hint = f"; the next newest is {fallback} (--checkpoint {fallback})" if fallback else ""
        raise ExperimentError(f"{e}{hint}") from None


def to_rgb(array: np.ndarray) -> np.ndarray | None:
    """An image observation as HxWx3 uint8: CHW RGB as is, a grayscale stack by its newest frame."""
    if array.dtype != np.uint8 or array.ndim != 3:
        return None
    channels = array.shape[0]
    if channels == 3:
        return np.ascontiguousarray(array.transpose(1, 2, 0))
    if channels in (1, 2, 4):
        return np.repeat(array[-1][:, :, None], 3, axis=2)
    return None




def act_seats(models: dict[int, torch.nn.Module], seat_policies: list[int], obs: dict, states, mask,
              deterministic: bool) -> dict:
    """Each seat's action from its own policy's model: one forward pass per policy seated. The seats may be those
    of several envs side by side (rows of `obs`, `states` and `mask`)."""
    groups: dict[int, list[int]] = {}
    for seat, policy in enumerate(seat_policies):
        groups.setdefault(policy, []).append(seat)
    if len(groups) == 1:
        (policy,) = groups
        return models[policy].act(obs, rnn_states=states, action_mask=mask, deterministic=deterministic)
    out: dict = {}
    for policy, seats in groups.items():
        index = torch.as_tensor(seats)
        part = models[policy].act({k: v[index] for k, v in obs.items()},
                                  rnn_states=None if states is None else states[index],
                                  action_mask=None if mask is None else mask[index], deterministic=deterministic)
        for key in ("actions", "values", "rnn_states"):
            if key in part:
                if key not in out:
                    out[key] = torch.zeros((len(seat_policies), *part[key].shape[1:]), dtype=part[key].dtype)
                out[key][index] = part[key]
    return out


@dataclass
class Player:
    folder: Path
    policy: int = 0
    checkpoint: str = "latest"
    # The seat watched in a multi-agent env. It plays `policy` from `checkpoint`; every other seat plays the
    # policy the run's mapping gives it (`sampler.policy_mapping`), from that policy's latest checkpoint
    # (this one's when that policy has none yet), so a duel of two policies is watched as it is trained.
    agent: int = 0
    deterministic: bool = False
    seed: int | None = None
    frames: bool = True  # render frames (an image observation, else the env's rgb_array render)
    env_name: str | None = None  # another env of the run's family to play (run.eval_env, enjoy --env)
    checkpoint_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        cfg_path = self.folder / "cfg.json"
        if not cfg_path.exists():
            raise ExperimentError(f"{self.folder}: no cfg.json here; is it an experiment folder?")
        trained = build_config(read_cfg_file(cfg_path))
        policies = trained.sampler.num_policies
        if not 0 <= self.policy < policies:
            raise ExperimentError(f"--policy {self.policy}: the experiment has policies 0..{policies - 1}")
        self.checkpoint_path = resolve_checkpoint(self.folder, self.policy, self.checkpoint)
        payload = load_checkpoint(self.folder, self.policy, self.checkpoint_path)

        self.family = family_for(trained.env.name)
        self.repeat = trained.env.frameskip if self.family.repeat_outside else 1
        env_update = {"frameskip": 1} if self.repeat > 1 else {}  # the player repeats each action itself
        if self.env_name and self.env_name != trained.env.name:
            if family_for(self.env_name) is not self.family:
                raise ExperimentError(f"--env {self.env_name}: not a {self.family.prefix}_* env; a policy plays "
                                      f"the envs of the family it trained in, e.g. {trained.env.name}")
            try:
                self.family.check_name(self.env_name)
            except SftuiError as e:
                raise ExperimentError(f"--env {str(e).removeprefix('env.name: ')}") from None
            env_update["name"] = self.env_name
        self.cfg = trained.model_copy(update={"env": trained.env.model_copy(update=env_update)})
        self.frameskip = trained.env.frameskip
        torch.set_num_threads(1)
        self.env = make_env(self.cfg, EnvContext(seed=self.seed, render_mode="rgb_array" if self.frames else None))
        self._trained = trained
        try:
            self._check(payload, self.checkpoint_path)
        except ExperimentError:
            self.env.close()
            raise
        self.model = self._model_from(payload)
        self.models = {self.policy: self.model}  # the other seats' policies
        if self.env.num_agents > 1:
            self.mapping = make_policy_mapping(self.cfg, seed=self.seed or 0)
            self._load_other_seats()
        self._take_facts(payload)
        if not 0 <= self.agent < self.env.num_agents:
            self.env.close()
            last = self.env.num_agents - 1
            raise ExperimentError(f"--agent {self.agent}: {self.cfg.env.name} seats agents 0..{last}")
        self.image_key = next((k for k, s in self.env.obs_specs.items() if s.dtype == "uint8" and len(s.shape) == 3),
                              None)
        self.episodes: list[Episode] = []
        self._reset()

    def _check(self, payload: dict, path: Path) -> None:
        """The checkpoint fits this env (an eval env must show the same spaces as the training env) and model."""
        checkpoints.check_compatible(payload, path, self._trained.env.name, self._trained.model.model_dump(mode="json"),
                                     obs_specs_to_dict(self.env.obs_specs), self.env.action_spec.to_dict())

    def _model_from(self, checkpoint: dict) -> torch.nn.Module:
        model = make_actor_critic(self.cfg.model, self.env.obs_specs, self.env.action_spec)
        model.load_state_dict(checkpoint["learner"]["model"])
        return model.eval()

    def _load_other_seats(self) -> None:
        for other in range(self._trained.sampler.num_policies):
            path = checkpoints.latest_checkpoint(self.folder, other) if other != self.policy else None
            if path is not None:
                try:
                    self.models[other] = self._model_from(checkpoints.load(path))
                except (ExperimentError, RuntimeError, KeyError):
                    pass  # unreadable: this seat plays the watched policy instead

    def _take_facts(self, payload: dict) -> None:
        self.version = int(payload.get("version", 0))
        self.env_frames = int(payload.get("env_frames", 0))
        self.reward_scale = float(payload.get("hyperparameters", {}).get("reward_scale", self.cfg.appo.reward_scale))

    def reload(self, path: Path, payload: dict | None = None) -> None:
        """Play another checkpoint of the same policy (newer weights) in the same env, from a fresh episode; the
        other seats of a multi-agent env take their policies' newest checkpoints too. `payload`: the file's
        content, when the caller has read it already."""
        payload = checkpoints.load(path) if payload is None else payload
        self._check(payload, path)
        self.model.load_state_dict(payload["learner"]["model"])
        if self.env.num_agents > 1:
            self._load_other_seats()
        self.checkpoint_path = path
        self._take_facts(payload)
        self._reset()

    # ---- stepping -------------------------------------------------------------------------------

    def _reset(self, seed: int | None = None) -> None:
        obs, infos = self.env.reset(seed=seed)
        self._obs, self._infos = obs, infos
        size = self.model.rnn_state_size
        self._states = torch.zeros(self.env.num_agents, size) if size else None
        self.seat_policies = [self._seat_policy(i) for i in range(self.env.num_agents)]
        self.episode_return = 0.0
        self.episode_step = 0

    def _seat_policy(self, seat: int) -> int:
        if seat == self.agent or self.env.num_agents == 1:
            return self.policy
        chosen = self.mapping.policy_for(0, 0, seat)
        return chosen if chosen in self.models else self.policy

    def _act(self, obs: dict, mask) -> dict:
        return act_seats(self.models, self.seat_policies, obs, self._states, mask, self.deterministic)

    def new_episode(self) -> None:
        """Abandon the current episode (not counted) and start a fresh one."""
        self._reset()

    def frame(self, obs: dict | None = None) -> np.ndarray | None:
        if not self.frames:
            return None
        if self.image_key is not None:
            return to_rgb((obs or self._obs[self.agent])[self.image_key])
        render = getattr(self.env, "render", None)
        if render is None:
            return None
        try:
            image = render()
        except NotImplementedError:  # an env without a picture (PettingZoo's default render)
            self.frames = False
            return None
        return image if isinstance(image, np.ndarray) and image.ndim == 3 else None

    def vector_obs(self, limit: int = 16) -> list[float]:
        """The first agent's non-image observation, flattened (at most `limit` numbers), for a live plot."""
        values = [np.asarray(v, np.float32).ravel() for k, v in self._obs[self.agent].items()
                  if k != self.image_key]
        return np.concatenate(values)[:limit].tolist() if values else []

    def observe(self) -> tuple[dict, torch.Tensor | None]:
        """Every seat's observation as tensors (seats first), and the action masks when every seat has one."""
        obs = {key: torch.as_tensor(np.stack([o[key] for o in self._obs])) for key in self.env.obs_specs}
        masks = [info.get("action_mask") for info in self._infos]
        mask = torch.as_tensor(np.stack(masks)) if all(m is not None for m in masks) else None
        return obs, mask

    def step(self) -> StepResult:
        return self.advance(self._act(*self.observe()))

    def advance(self, out: dict) -> StepResult:
        """Steps the env with the actions of `out` (the models' answer to `observe()`, one row per seat)."""
        actions = out["actions"].numpy()
        a = self.agent
        value = float(self.model.returns_normalizer.denormalize(out["values"][a:a + 1])[0]) / self.reward_scale
        if self._states is not None:
            self._states = out["rnn_states"]
        reward, done, frames = 0.0, False, []
        for _ in range(self.repeat):
            new_obs, rewards, terminated, truncated, infos = self.env.step(list(actions))
            reward += float(rewards[a])
            ended = [te or tr for te, tr in zip(terminated, truncated, strict=True)]
            self._obs, self._infos = new_obs, infos
            for i, e in enumerate(ended):
                if e:
                    if self._states is not None:
                        self._states[i] = 0.0
                    if not infos[i].get("episode_continues"):
                        self.seat_policies[i] = self._seat_policy(i)  # the next episode's opponent
            done = ended[a] and not infos[a].get("episode_continues")
            if not done or self.image_key is None:
                image = self.frame()
                if image is not None:
                    frames.append(image)
            if any(ended):
                break
        self.episode_return += reward
        self.episode_step += 1
        result = StepResult(frames=frames, action=actions[a].tolist(), value=value, reward=reward,
                            episode_return=self.episode_return, episode_step=self.episode_step, done=done)
        if done:
            self.episodes.append(Episode(len(self.episodes) + 1, self.episode_return, self.episode_step,
                                         self.episode_step * self.frameskip))
            self.episode_return = 0.0
            self.episode_step = 0
        return result

    @property
    def natural_fps(self) -> float:
        """Frames a second at real-time speed, as the family says (Doom's 35 tics, Atari's 60), else the env's
        render_fps, else 30."""
        if self.family.play_fps is not None:
            fps = self.family.play_fps(self.cfg, self.frameskip // self.repeat)
            if fps is not None:
                return fps
        metadata = getattr(getattr(self.env, "env", None), "metadata", None) or {}
        return float(metadata.get("render_fps") or 30.0)

    def close(self) -> None:
        self.env.close()


def play_episodes(players: list[Player], episodes: int) -> list[float]:
    """`episodes` whole episodes played by players of one policy and checkpoint side by side, each env's seats
    acting in one forward pass per policy seated (the first player's models act for all). Each player plays a
    fixed share, so short episodes are not favoured, as they would be by taking the first `episodes` to finish.
    Each starts where it stands: at an episode's start after it was made or reloaded, or after its last share.
    The returns, in the players' order."""
    shares = [episodes // len(players) + (i < episodes % len(players)) for i in range(len(players))]
    first = [len(p.episodes) for p in players]
    leader = players[0]
    active = [i for i, share in enumerate(shares) if share]
    while active:
        playing = [players[i] for i in active]
        observed = [p.observe() for p in playing]
        obs = {key: torch.cat([o[key] for o, _ in observed]) for key in observed[0][0]}
        masks = [m for _, m in observed]
        mask = torch.cat(masks) if all(m is not None for m in masks) else None
        states = None if leader._states is None else torch.cat([p._states for p in playing])
        seats = [policy for p in playing for policy in p.seat_policies]
        out = act_seats(leader.models, seats, obs, states, mask, leader.deterministic)
        row = 0
        for player in playing:
            n = player.env.num_agents
            player.advance({key: value[row:row + n] for key, value in out.items()})
            row += n
        active = [i for i in active if len(players[i].episodes) - first[i] < shares[i]]
    return [e.episode_return for p, start, share in zip(players, first, shares, strict=True)
            for e in p.episodes[start:start + share]]
