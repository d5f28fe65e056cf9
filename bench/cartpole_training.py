"""Training FPS and time-to-450 for CartPole with the default config (MLP 512-512, 2 workers x 16 envs, batch 1024).

    python bench/cartpole_training.py [--frames 1000000]

Trains once through the real process tree and prints one table, read from the run's status.jsonl.
Not a test: these machines are noisy, so compare figures taken in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SETTINGS = [
    "sampler.num_workers=2", "sampler.num_envs_per_worker=16", "model.encoder_mlp_layers=[512,512]",
    "appo.batch_size=1024", "appo.num_epochs=1", "run.seed=0",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as train_dir:
        command = [sys.executable, "-m", "sftui", "train", "gym_CartPole-v1", "-e", "bench", "--train-dir", train_dir,
                   "--set", f"run.train_for_env_steps={args.frames}"]
        for setting in SETTINGS:
            command += ["--set", setting]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lines = (Path(train_dir) / "bench" / "status.jsonl").read_text().splitlines()
    statuses = [json.loads(line) for line in lines if line.strip()]
    running = [s for s in statuses if s["state"] == "running"]
    last = running[-1]
    steady = [s for s in running if s["elapsed_sec"] >= 5.0]  # skip start-up
    steady_fps = float("nan")
    if len(steady) > 1:
        frames = steady[-1]["env_frames"] - steady[0]["env_frames"]
        steady_fps = frames / (steady[-1]["elapsed_sec"] - steady[0]["elapsed_sec"])
    overall_fps = last["env_frames"] / last["elapsed_sec"] if last["elapsed_sec"] else float("nan")
    reached = next((s for s in statuses if (s["policies"][0]["episode_return"] or 0) >= 450), None)
    rows = [
        ("env frames trained", f"{statuses[-1]['env_frames']:,}"),
        ("training FPS, steady (after 5 s)", f"{steady_fps:,.0f}"),
        ("training FPS, whole run", f"{overall_fps:,.0f}"),
        ("policy lag avg / max (last report)",
         f"{last['policies'][0]['lag']['avg']:.1f} / {last['policies'][0]['lag']['max']:.0f}"),
        ("mean return >= 450 at", "not reached" if reached is None else
         f"{reached['env_frames']:,} frames, {reached['elapsed_sec']:.1f} s"),
        ("final mean return", f"{statuses[-1]['policies'][0]['episode_return'] or 0:.1f}"),
        ("cores", str(os.cpu_count())),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'gym_CartPole-v1 (MLP 512-512, 2x16 envs, batch 1024)':<{width}}")
    print("-" * (width + 26))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
