"""Sample Factory 2.1.1 training any Gymnasium env by id, for bench/learning.py; run by Sample Factory's own Python.

    sfvenv/bin/python bench/sf_gym.py DEFAULTS:ENV_ID [Sample Factory arguments]

DEFAULTS is `classic` (Sample Factory's generic defaults plus what the arguments set) or `mujoco` (its MuJoCo
defaults, its published continuous-control settings). Its gym example registers CartPole only; this registers
the named env. The env function lives at module level so that Sample Factory's spawned workers can find it.
"""

import sys

import gymnasium as gym
from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args
from sample_factory.envs.env_utils import register_env
from sample_factory.train import run_rl


def make_env(full_env_name, cfg=None, env_config=None, render_mode=None):
    return gym.make(full_env_name, render_mode=render_mode)


if __name__ == "__main__":
    defaults, env = sys.argv.pop(1).split(":")
    sys.argv.append(f"--env={env}")
    register_env(env, make_env)
    parser, _ = parse_sf_args()
    if defaults == "mujoco":
        from sf_examples.mujoco.mujoco_params import mujoco_override_defaults

        mujoco_override_defaults(env, parser)
    sys.exit(run_rl(parse_full_cfg(parser)))
