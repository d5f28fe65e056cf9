"""A run whose shared buffers do not fit /dev/shm is refused in one line, before anything is created."""

from __future__ import annotations

from collections import namedtuple

import pytest
import torch

from algos.spaces import ActionSpec, ObsSpec
from sampler.errors import ExperimentError
from sampler.shm import buffers as shm
from sampler.shm.buffers import BufferLayout, TrajectoryBuffers, check_shared_memory

OBS = {"obs": ObsSpec(shape=(3, 72, 128), dtype="uint8")}
ACTION = ActionSpec(kind="discrete", n=6)


def test_required_bytes_is_what_the_buffers_take():
    layout = BufferLayout(num_workers=2, slots_per_worker=4, buffers_per_slot=2, rollout=8)
    made = TrajectoryBuffers(layout, OBS, ACTION, rnn_state_size=16)
    allocated = sum(t.numel() * t.element_size() for t in vars(made).values() if isinstance(t, torch.Tensor))
    allocated += sum(t.numel() * t.element_size() for t in made.obs.values())
    assert TrajectoryBuffers.required_bytes(layout, OBS, ACTION, rnn_state_size=16) == allocated


def test_buffers_larger_than_dev_shm_are_refused_with_the_sizes_and_what_to_change(monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shm.shutil, "disk_usage", lambda _: usage(64 * 2**20, 0, 64 * 2**20))
    check_shared_memory(40 * 2**20)  # fits
    with pytest.raises(ExperimentError, match=r"need 167 MB of shared memory, but /dev/shm has 64 MB free; "
                                              r"enlarge it \(in Docker: --shm-size=2g\)"):
        check_shared_memory(167 * 2**20)
