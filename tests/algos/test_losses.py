import pytest
import torch

from algos.losses import entropy_loss, masked_mean, policy_loss, value_loss


def splice_garbage(tensors, valids, num_extra=7, seed=0):
    """Insert invalid samples holding random garbage at random positions."""
    gen = torch.Generator().manual_seed(seed)
    size = valids.shape[0] + num_extra
    extra_positions = torch.randperm(size, generator=gen)[:num_extra]
    is_extra = torch.zeros(size, dtype=torch.bool)
    is_extra[extra_positions] = True
    spliced = []
    for x in tensors:
        out = torch.randn(size, generator=gen) * 100
        out[~is_extra] = x
        spliced.append(out)
    new_valids = torch.zeros(size, dtype=torch.bool)
    new_valids[~is_extra] = valids
    return spliced, new_valids


@pytest.fixture
def sample():
    gen = torch.Generator().manual_seed(42)
    n = 64
    return {
        "log_prob_new": torch.randn(n, generator=gen) * 0.3 - 1.0,
        "log_prob_old": torch.randn(n, generator=gen) * 0.3 - 1.0,
        "advantages": torch.randn(n, generator=gen),
        "values_new": torch.randn(n, generator=gen),
        "values_old": torch.randn(n, generator=gen),
        "targets": torch.randn(n, generator=gen) * 2,
        "entropy": torch.rand(n, generator=gen),
        "valids": torch.rand(n, generator=gen) > 0.2,
    }


def all_losses(s, valids):
    return (
        policy_loss(s["log_prob_new"], s["log_prob_old"], s["advantages"], valids, 0.1),
        value_loss(s["values_new"], s["values_old"], s["targets"], valids, 0.2),
        entropy_loss(s["entropy"], valids),
        masked_mean(s["values_new"], valids),
    )


def test_losses_unchanged_when_invalid_samples_spliced_in(sample):
    names = [k for k in sample if k != "valids"]
    before = all_losses(sample, sample["valids"])
    spliced, valids = splice_garbage([sample[k] for k in names], sample["valids"])
    after = all_losses(dict(zip(names, spliced, strict=True)), valids)
    for a, b in zip(before, after, strict=True):
        torch.testing.assert_close(a, b)


def test_masked_mean_ignores_nan_in_invalid_slots():
    x = torch.tensor([1.0, float("nan"), 3.0, float("inf")])
    valids = torch.tensor([1.0, 0.0, 1.0, 0.0])
    assert masked_mean(x, valids).item() == 2.0
    assert masked_mean(x, torch.zeros(4)).item() == 0.0


def test_policy_loss_clipping_hand_computed():
    eps = 0.25  # clip range [0.8, 1.25]
    ratios = torch.tensor([2.0, 2.0, 0.5, 0.5, 1.1])
    advantages = torch.tensor([1.0, -1.0, 1.0, -1.0, 2.0])
    old = torch.zeros(5)
    valids = torch.ones(5, dtype=torch.bool)
    per_sample = []
    for i in range(5):
        one = torch.zeros(5, dtype=torch.bool)
        one[i] = True
        per_sample.append(policy_loss(ratios.log(), old, advantages, one, eps).item())
    # min(r*A, clip(r)*A), negated:
    # r=2,   A=+1: min(2, 1.25) = 1.25        (gain beyond the clip is ignored)
    # r=2,   A=-1: min(-2, -1.25) = -2        (pessimistic: unclipped)
    # r=0.5, A=+1: min(0.5, 0.8) = 0.5
    # r=0.5, A=-1: min(-0.5, -0.8) = -0.8
    # r=1.1, A=2 : inside the range, 2.2
    assert per_sample == pytest.approx([-1.25, 2.0, -0.5, 0.8, -2.2])
    total = policy_loss(ratios.log(), old, advantages, valids, eps)
    assert total.item() == pytest.approx(sum(per_sample) / 5)


def test_policy_loss_ratio_hard_bounds():
    # A ratio of e^10 is first clamped to 20, so with A<0 the loss is 20, not e^10.
    loss = policy_loss(torch.tensor([10.0]), torch.tensor([0.0]), torch.tensor([-1.0]), torch.ones(1), 0.1)
    assert loss.item() == pytest.approx(20.0)


def test_policy_loss_gradient_vanishes_outside_clip_range():
    new = torch.tensor([1.0], requires_grad=True)  # ratio e > 1.1
    policy_loss(new, torch.zeros(1), torch.ones(1), torch.ones(1), 0.1).backward()
    assert new.grad.item() == 0.0


def test_value_loss_clipping_hand_computed():
    old = torch.tensor([0.0, 0.0, 0.0])
    new = torch.tensor([2.0, 0.5, -2.0])
    targets = torch.tensor([3.0, 1.0, 1.0])
    clip = 1.0
    # sample 0: unclipped (2-3)^2 = 1, clipped (1-3)^2 = 4 -> 4
    # sample 1: inside the range -> (0.5-1)^2 = 0.25
    # sample 2: unclipped (-2-1)^2 = 9, clipped (-1-1)^2 = 4 -> 9
    per_sample = [value_loss(new, old, targets, torch.arange(3) == i, clip).item() for i in range(3)]
    assert per_sample == pytest.approx([4.0, 0.25, 9.0])
    assert value_loss(new, old, targets, torch.ones(3), clip).item() == pytest.approx(13.25 / 3)


def test_entropy_loss_is_negative_mean_entropy():
    entropy = torch.tensor([1.0, 2.0, 100.0])
    valids = torch.tensor([True, True, False])
    assert entropy_loss(entropy, valids).item() == pytest.approx(-1.5)
