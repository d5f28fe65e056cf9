"""Machine facts: CPU flags read from cpuinfo, and appo.precision resolved from them."""

from __future__ import annotations

import pytest
import torch

from sampler import machine

CPU = torch.device("cpu")


def test_cpu_flags_come_from_the_flags_line_and_are_empty_without_one(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512_bf16\nbogomips\t: 4000\n")
    assert machine.cpu_flags(str(cpuinfo)) == {"fpu", "sse2", "avx512_bf16"}
    assert machine.cpu_flags(str(tmp_path / "missing")) == frozenset()


@pytest.mark.parametrize(("flags", "native"), [
    ({"sse2"}, False), ({"sse2", "avx512_bf16"}, True), ({"amx_bf16"}, True)])
def test_auto_precision_is_bf16_exactly_where_the_cpu_computes_it_natively(monkeypatch, flags, native):
    monkeypatch.setattr(machine, "cpu_flags", lambda: frozenset(flags))
    assert machine.native_bf16(CPU) is native
    assert machine.uses_bf16("auto", CPU) is native
    assert machine.uses_bf16("bf16", CPU) and not machine.uses_bf16("fp32", CPU)  # an explicit choice holds

