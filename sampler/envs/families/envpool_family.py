"""`envpool_<task>`: EnvPool's C++ vector envs, sampled in batches (`sampler.batched_sampling`, on by default).

`<task>` is an EnvPool task id, e.g. `envpool_Pong-v5`, `envpool_Breakout-v5` (Atari: 84x84 grayscale, frame
stack 4, frame skip and no-op starts done by EnvPool), or `envpool_doom_<scenario>` for one of vizdoom's own
scenarios run through EnvPool's `VizdoomCustom-v1` with the scenario's cfg and wad (e.g. `envpool_doom_basic`).
EnvPool rewards a Doom agent for changes of game variables (its `reward_config`: +1 a kill, small amounts for
ammo, health, hits...), not with the scenario's own reward script, so envpool_doom_* returns are not those of
doom_*; `env.envpool.kwargs.reward_config` changes the weights.

Settings live under `env.envpool.*`, with EnvPool's own names:
- `num_envs`: the envs of each rollout worker. It replaces `sampler.num_envs_per_worker` for this family.
- `batch_size`: how many envs answer each step. Equal to num_envs (or 0), every step answers for all of them
  (sync mode); smaller, EnvPool answers for whichever envs are ready first (async mode). It has nothing to do
  with `appo.batch_size`, the learner's batch.
- `num_threads`: EnvPool's threads per worker (0: its own choice).

Other tasks (MuJoCo such as `envpool_HalfCheetah-v4`, dm_control, classic control) take the MLP defaults.

EnvPool skips frames itself. For Atari and Doom `env.frameskip` is passed on as its frame_skip: env frames =
samples x frameskip. MuJoCo's frame_skip means physics steps per action, so there it stays EnvPool's own (change it
through env.envpool.kwargs.frame_skip) and env.frameskip stays 1.
Its autoreset is "next step": the step after an episode's end resets the env and is left out of the loss.
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sampler.envs.contract import EnvContext, action_spec_of, obs_specs_of
from sampler.envs.families.atari import ATARI_FPS
from sampler.envs.families.doom.engine import TICS_PER_SECOND
from sampler.envs.families.registry import EnvFamily, register_family
from sampler.envs.vector import VectorStep
from sampler.errors import ConfigError, MissingDependencyError

DOOM_PREFIX = "doom_"


class EnvPoolSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_envs: int = Field(
        64, ge=1, description="EnvPool's num_envs: envs per rollout worker (replaces sampler.num_envs_per_worker "
        "for envpool_* envs)."
    )
    batch_size: int = Field(
        0, ge=0, description="EnvPool's batch_size: envs answering each step; 0 or num_envs: all (sync mode), "
        "fewer: whichever are ready (async mode). Unrelated to appo.batch_size."
    )
    num_threads: int = Field(0, ge=0, description="EnvPool's num_threads per rollout worker; 0: EnvPool's choice.")
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="More EnvPool settings by their names, e.g. {\"episodic_life\": true}."
    )


def _envpool():
    try:
        import envpool
    except ImportError:
        raise MissingDependencyError("envpool_* envs need EnvPool: pip install -c constraints.txt -e '.[envpool]'") \
            from None
    return envpool


@functools.cache
def all_tasks() -> tuple[str, ...]:
    return tuple(_envpool().list_all_envs())


def task_of(env_name: str) -> str:
    return env_name.split("_", 1)[1]


@functools.cache
def task_kind(task: str) -> str:
    """"doom", "atari" (EnvPool's Atari settings, episodic_life among them), or "other" (MuJoCo, dm_control,
    classic control...): only Doom and Atari skip frames the way env.frameskip counts them."""
    if task.startswith(DOOM_PREFIX):
        return "doom"
    return "atari" if "episodic_life" in _envpool().make_spec(task).config._fields else "other"


def doom_files(scenario: str) -> tuple[Path, Path]:
    import vizdoom

    folder = Path(vizdoom.scenarios_path)
    cfg, wad = folder / f"{scenario}.cfg", folder / f"{scenario}.wad"
    if not cfg.exists() or not wad.exists():
        known = sorted(p.stem for p in folder.glob("*.cfg") if (folder / f"{p.stem}.wad").exists())
        close = difflib.get_close_matches(scenario, known, n=3)
        hint = f" (did you mean {', '.join('envpool_doom_' + c for c in close)}?)" if close else ""
        raise ConfigError(f"env.name: vizdoom has no scenario {scenario!r} with a cfg and a wad{hint}")
    return cfg, wad


def validate_name(env_name: str) -> None:
    task = task_of(env_name)
    if task.startswith(DOOM_PREFIX):
        doom_files(task.removeprefix(DOOM_PREFIX))
        return
    if task not in all_tasks():
        close = difflib.get_close_matches(task, all_tasks(), n=3, cutoff=0.5)
        hint = f"; close matches: {', '.join('envpool_' + c for c in close)}" if close else \
            "; `python -c \"import envpool; print(envpool.list_all_envs())\"` lists them"
        raise ConfigError(f"env.name: EnvPool has no task {task!r}{hint}")


def validate_config(cfg) -> None:
    settings: EnvPoolSettings = cfg.env.envpool
    if not cfg.sampler.batched_sampling:
        raise ConfigError("sampler.batched_sampling: envpool_* envs are vector envs; set it to true (the default)")
    if settings.batch_size > settings.num_envs:
        raise ConfigError(f"env.envpool.batch_size ({settings.batch_size}) is above env.envpool.num_envs "
                          f"({settings.num_envs})")
    task = task_of(cfg.env.name)
    if cfg.env.frameskip != 1 and task_kind(task) == "other":
        raise ConfigError(f"env.frameskip: EnvPool's {task} keeps its own frame skip (physics steps per action); "
                          "leave env.frameskip at 1 and set env.envpool.kwargs.frame_skip to change it")


class EnvPoolVector:
    """An EnvPool env behind the vector contract (sampler/vector.py), in sync or async mode."""

    autoreset = "next_step"

    def __init__(self, env, num_envs: int, batch_size: int):
        self.env = env
        self.num_envs = num_envs
        self.is_async = batch_size < num_envs
        self.obs_specs = obs_specs_of(env.observation_space)
        self.action_spec = action_spec_of(env.action_space)
        self._dict = isinstance(env.observation_space, gym.spaces.Dict)

    def _obs(self, obs) -> dict[str, np.ndarray]:
        return dict(obs) if self._dict else {"obs": obs}

    def _result(self, obs, rewards, terminated, truncated, info) -> VectorStep:
        ids = np.asarray(info["env_id"], np.int64) if self.is_async else None
        return VectorStep(self._obs(obs), np.asarray(rewards, np.float32), np.asarray(terminated, bool),
                          np.asarray(truncated, bool), env_ids=ids)

    def reset(self) -> VectorStep:
        if self.is_async:
            self.env.async_reset()
            obs, rewards, terminated, truncated, info = self.env.recv()
            return self._result(obs, rewards, terminated, truncated, info)
        obs, info = self.env.reset()
        n = self.num_envs
        return VectorStep(self._obs(obs), np.zeros(n, np.float32), np.zeros(n, bool), np.zeros(n, bool))

    def step(self, actions: np.ndarray, env_ids: np.ndarray | None = None) -> VectorStep:
        if self.is_async:
            self.env.send(actions, np.asarray(env_ids, np.int32))
            return self._result(*self.env.recv())
        return self._result(*self.env.step(actions))

    def close(self) -> None:
        self.env.close()


def _make_pool(cfg, context: EnvContext, num_envs: int, batch_size: int, num_threads: int):
    envpool = _envpool()
    kwargs: dict[str, Any] = {"num_envs": num_envs, "batch_size": batch_size, "num_threads": num_threads,
                              "seed": int(context.seed or 0)}
    task = task_of(cfg.env.name)
    if task_kind(task) != "other":
        kwargs["frame_skip"] = cfg.env.frameskip
    if task.startswith(DOOM_PREFIX):
        scenario_cfg, wad = doom_files(task.removeprefix(DOOM_PREFIX))
        kwargs.update(cfg_path=str(scenario_cfg), wad_path=str(wad), use_combined_action=True, stack_num=1,
                      img_width=cfg.env.res_w, img_height=cfg.env.res_h)
        task = "VizdoomCustom-v1"
    kwargs.update(cfg.env.envpool.kwargs)
    try:
        return envpool.make(task, env_type="gymnasium", **kwargs)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ConfigError(f"{cfg.env.name}: EnvPool refused its settings ({e}); check env.envpool.kwargs") from None


def make_vector(cfg, context: EnvContext) -> EnvPoolVector:
    settings: EnvPoolSettings = cfg.env.envpool
    batch_size = settings.batch_size or settings.num_envs
    env = _make_pool(cfg, context, settings.num_envs, batch_size, settings.num_threads)
    return EnvPoolVector(env, settings.num_envs, batch_size)


class EnvPoolAgent:
    """One EnvPool env as a one-agent env (sampler/envs.py), for watching a checkpoint (`sftui enjoy`).

    Training refuses it (validate_config): it steps one env per call, which is what EnvPool exists to avoid.
    The env contract wants the next episode's first observation with a done, so a done resets at once rather than
    on EnvPool's next step.
    """

    num_agents = 1

    def __init__(self, env):
        self.vector = EnvPoolVector(env, 1, 1)
        self.obs_specs, self.action_spec = self.vector.obs_specs, self.vector.action_spec

    def _first(self, step: VectorStep) -> dict[str, np.ndarray]:
        return {key: value[0] for key, value in step.obs.items()}

    def reset(self, seed: int | None = None):
        return [self._first(self.vector.reset())], [{}]

    def step(self, actions: list[Any]):
        step = self.vector.step(np.asarray(actions))
        terminated, truncated = bool(step.terminated[0]), bool(step.truncated[0])
        obs = self._first(self.vector.reset() if terminated or truncated else step)
        return [obs], [float(step.rewards[0])], [terminated], [truncated], [{}]

    def close(self) -> None:
        self.vector.close()


def make(cfg, context: EnvContext) -> EnvPoolAgent:
    return EnvPoolAgent(_make_pool(cfg, context, num_envs=1, batch_size=1, num_threads=1))


def defaults_by_id(env_name: str) -> dict:
    validate_name(env_name)  # the defaults depend on the task's kind: an unknown task gets its close matches first
    kind = task_kind(task_of(env_name))
    if kind == "other":  # vector observations: the MLP defaults, and EnvPool's own frame skip
        return {"env": {"frameskip": 1}}
    if kind == "doom":
        return {"env": {"frameskip": 4, "res_w": 128, "res_h": 72},
                "model": {"use_rnn": True, "rnn_type": "gru", "rnn_size": 512,
                          "encoder_conv_architecture": "convnet_simple", "encoder_conv_mlp_layers": [512],
                          "policy_init_gain": 1.0},
                "appo": {"rollout": 16, "recurrence": 16, "batch_size": 512, "learning_rate": 5e-4,
                         "exploration_loss": "symmetric_kl", "exploration_loss_coeff": 0.003}}
    return {  # Atari, as the atari_ family
        "model": {"use_rnn": False, "encoder_conv_architecture": "convnet_atari", "encoder_conv_mlp_layers": [512]},
        "appo": {"rollout": 128, "batch_size": 256, "num_batches_per_epoch": 4, "num_epochs": 4,
                 "learning_rate": 2.5e-4, "ppo_clip_ratio": 0.1, "exploration_loss_coeff": 0.01,
                 "max_grad_norm": 0.5, "reward_clip": 1.0},
    }


def play_fps(cfg: Any, frames_per_step: int) -> float | None:
    """Doom and Atari tasks play at their engines' real-time rates; other tasks at the env's own render_fps."""
    rate = {"doom": TICS_PER_SECOND, "atari": ATARI_FPS}.get(task_kind(task_of(cfg.env.name)))
    return None if rate is None else rate / frames_per_step


register_family(
    EnvFamily(
        prefix="envpool",
        description="EnvPool vector envs, batched: e.g. envpool_Pong-v5, envpool_Breakout-v5, envpool_doom_basic",
        make=make,
        example="envpool_Pong-v5",
        defaults={"env": {"frameskip": 4}, "sampler": {"batched_sampling": True, "num_workers": 1}},
        settings_model=EnvPoolSettings,
        validate_name=validate_name,
        defaults_by_id=defaults_by_id,
        validate_config=validate_config,
        make_vector=make_vector,
        play_fps=play_fps,
        envs_per_worker=lambda cfg: cfg.env.envpool.num_envs,
    )
)
