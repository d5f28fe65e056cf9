"""Facts about this machine the run needs: native bf16 support, usable cores."""

from __future__ import annotations

import functools
import os

import torch

CPUINFO = "/proc/cpuinfo"


@functools.cache
def cpu_flags(cpuinfo: str = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags as the kernel lists them; none where it does not (not Linux)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 matmuls and convolutions in hardware (not emulated, so faster)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def uses_bf16(precision: str, device: torch.device) -> bool:
    """appo.precision resolved for `device`: auto means bf16 where the hardware computes it natively."""
    return native_bf16(device) if precision == "auto" else precision == "bf16"


def usable_cores() -> int:
    """The cores this process may run on: its affinity, which a container or taskset may narrow."""
    return len(os.sched_getaffinity(0))
