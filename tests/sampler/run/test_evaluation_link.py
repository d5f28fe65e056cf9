"""The evaluator's atomic hard link: relinking a name to the file it already is leaves no temporary behind (a
mark and the final evaluation can play the same checkpoint)."""

from __future__ import annotations

import os

from sampler.run.evaluation import _link


def test_linking_a_name_to_the_file_it_already_is_leaves_no_temporary(tmp_path):
    source = tmp_path / "ckpt_000000001_1024.pt"
    source.write_bytes(b"weights")
    target = tmp_path / ".eval.pt"
    _link(source, target)
    _link(source, target)  # rename() of two links of one file does nothing and keeps both names
    assert sorted(p.name for p in tmp_path.iterdir()) == [".eval.pt", "ckpt_000000001_1024.pt"]
    assert os.path.samefile(source, target) and target.read_bytes() == b"weights"
