import numpy as np
import torch

from algos.normalize import RunningMeanStd


def test_matches_numpy_over_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 3, 2)) for n in (1, 7, 50, 200)]
    rms = RunningMeanStd((3, 2))
    for batch in batches:
        rms.update(torch.from_numpy(batch).float())
    everything = np.concatenate(batches).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(rms.mean.numpy(), everything.mean(axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rms.var.numpy(), everything.var(axis=0), rtol=1e-6, atol=1e-6)
    assert rms.count.item() == len(everything)
    assert rms.mean.dtype == torch.float64


def test_empty_batch_is_ignored():
    rms = RunningMeanStd(())
    rms.update(torch.tensor([1.0, 2.0]))
    before = {k: v.clone() for k, v in rms.state_dict().items()}
    rms.update(torch.zeros(0))
    for key, value in rms.state_dict().items():
        assert torch.equal(value, before[key])


def test_normalize_denormalize_round_trip():
    rms = RunningMeanStd((4,), clip=100.0)
    x = torch.randn(500, 4) * 5 + 2
    rms.update(x)
    normalized = rms.normalize(x)
    assert normalized.dtype == torch.float32
    assert abs(normalized.mean().item()) < 1e-4
    assert abs(normalized.std().item() - 1.0) < 1e-2
    torch.testing.assert_close(rms.denormalize(normalized), x, rtol=1e-4, atol=1e-4)


def test_normalize_clips():
    rms = RunningMeanStd((), clip=2.0)
    rms.update(torch.randn(1000))
    out = rms.normalize(torch.tensor([1e6, -1e6]))
    torch.testing.assert_close(out, torch.tensor([2.0, -2.0]))


def test_state_dict_round_trip():
    rms = RunningMeanStd((2,))
    rms.update(torch.randn(64, 2) * 3)
    state = rms.state_dict()
    assert set(state) == {"mean", "var", "count"}
    restored = RunningMeanStd((2,))
    restored.load_state_dict(state)
    for key, value in rms.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value)
