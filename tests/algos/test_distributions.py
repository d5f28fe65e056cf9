import math

import pytest
import torch
from torch.distributions import Categorical, Independent, Normal, kl_divergence

from algos.distributions import (
    CategoricalDist,
    DiagGaussianDist,
    MultiCategoricalDist,
    make_distribution,
    symmetric_kl_to_uniform,
)
from algos.spaces import ActionSpec


def test_categorical_matches_torch():
    torch.manual_seed(0)
    logits_p, logits_q = torch.randn(2, 8, 5)
    p, q = CategoricalDist(logits_p), CategoricalDist(logits_q)
    ref_p, ref_q = Categorical(logits=logits_p), Categorical(logits=logits_q)
    actions = ref_p.sample()
    torch.testing.assert_close(p.log_prob(actions), ref_p.log_prob(actions))
    torch.testing.assert_close(p.entropy(), ref_p.entropy())
    torch.testing.assert_close(p.kl(q), kl_divergence(ref_p, ref_q))
    torch.testing.assert_close(p.mode(), logits_p.argmax(-1))


def test_masked_categorical_matches_torch_on_allowed_actions():
    torch.manual_seed(1)
    logits_p, logits_q = torch.randn(2, 6, 4)
    mask = torch.tensor([[True, False, True, True]] * 3 + [[False, False, True, False]] * 3)
    p, q = CategoricalDist(logits_p, mask), CategoricalDist(logits_q, mask)
    ref_p = Categorical(logits=logits_p.masked_fill(~mask, -math.inf))
    ref_q = Categorical(logits=logits_q.masked_fill(~mask, -math.inf))

    actions = ref_p.sample()
    torch.testing.assert_close(p.log_prob(actions), ref_p.log_prob(actions))
    # torch's own entropy gives NaN with -inf logits, so use its probs over allowed actions only.
    ref_entropy = -torch.where(mask, ref_p.probs * ref_p.logits, 0.0).sum(-1)
    torch.testing.assert_close(p.entropy(), ref_entropy)
    assert torch.isfinite(p.entropy()).all()
    # A single allowed action means a deterministic policy.
    torch.testing.assert_close(p.entropy()[3:], torch.zeros(3))
    ref_kl = torch.where(mask, ref_p.probs * (ref_p.logits - ref_q.logits), 0.0).sum(-1)
    torch.testing.assert_close(p.kl(q), ref_kl)
    assert mask.gather(1, p.mode().unsqueeze(1)).all()


def test_masked_categorical_row_by_row_against_submatrix():
    logits = torch.tensor([[0.3, -1.0, 2.0, 0.5]])
    mask = torch.tensor([[True, False, True, False]])
    dist = CategoricalDist(logits, mask)
    ref = Categorical(logits=logits[:, [0, 2]])
    torch.testing.assert_close(dist.log_prob(torch.tensor([2])), ref.log_prob(torch.tensor([1])))
    torch.testing.assert_close(dist.entropy(), ref.entropy())


def test_masked_actions_never_sampled():
    torch.manual_seed(2)
    logits = torch.zeros(4000, 5)
    logits[:, 1] = 10.0  # the most likely action is the masked one
    mask = torch.ones(4000, 5, dtype=torch.bool)
    mask[:, 1] = False
    mask[::2, 3] = False
    samples = CategoricalDist(logits, mask).sample()
    assert samples.shape == (4000,)
    assert mask.gather(1, samples.unsqueeze(1)).all()
    assert set(samples.unique().tolist()) == {0, 2, 3, 4}


def test_fully_masked_row_is_treated_as_unmasked():
    logits = torch.randn(2, 3)
    dist = CategoricalDist(logits, torch.zeros(2, 3, dtype=torch.bool))
    torch.testing.assert_close(dist.log_probs, torch.log_softmax(logits, -1))
    assert torch.isfinite(dist.entropy()).all()
    assert torch.isfinite(dist.log_prob(torch.tensor([0, 1]))).all()


def test_categorical_sample_keeps_leading_dims():
    assert CategoricalDist(torch.randn(3, 4, 6)).sample().shape == (3, 4)


def _gaussian_params(mean, log_std):
    return torch.cat([mean, log_std], dim=-1)


def test_diag_gaussian_matches_torch():
    torch.manual_seed(3)
    mean_p, mean_q = torch.randn(2, 10, 3)
    log_std_p, log_std_q = torch.randn(2, 10, 3) * 0.5
    p = DiagGaussianDist(_gaussian_params(mean_p, log_std_p))
    q = DiagGaussianDist(_gaussian_params(mean_q, log_std_q))
    ref_p = Independent(Normal(mean_p, log_std_p.exp()), 1)
    ref_q = Independent(Normal(mean_q, log_std_q.exp()), 1)
    actions = ref_p.sample()
    torch.testing.assert_close(p.log_prob(actions), ref_p.log_prob(actions))
    torch.testing.assert_close(p.entropy(), ref_p.entropy())
    torch.testing.assert_close(p.kl(q), kl_divergence(ref_p, ref_q))
    torch.testing.assert_close(p.mode(), mean_p)
    assert p.sample().shape == (10, 3)


def test_diag_gaussian_clamps_log_std():
    dist = DiagGaussianDist(_gaussian_params(torch.zeros(1, 2), torch.tensor([[-50.0, 50.0]])))
    torch.testing.assert_close(dist.log_std, torch.tensor([[-5.0, 2.0]]))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (ActionSpec(kind="discrete", n=4), CategoricalDist),
        (ActionSpec(kind="box", shape=(2,), low=(-1.0, -1.0), high=(1.0, 1.0)), DiagGaussianDist),
        (ActionSpec(kind="multi_discrete", nvec=(3, 2)), MultiCategoricalDist),
    ],
)
def test_make_distribution(spec, expected):
    params = torch.randn(5, spec.num_dist_params())
    dist = make_distribution(spec, params)
    assert isinstance(dist, expected)
    actions = dist.sample()
    assert actions.shape == (5, *spec.action_shape())
    assert actions.dtype == spec.action_dtype()
    assert dist.log_prob(actions).shape == (5,)


NVEC = (3, 1, 4)


def _multi_masks(num):
    gen = torch.Generator().manual_seed(5)
    mask = torch.rand(num, sum(NVEC), generator=gen) > 0.4
    mask[:, [0, 3, 7]] = True  # every head has an allowed action...
    mask[:4, 4:] = False  # ...except head 2 in rows 0..3: fully masked, so treated as unmasked
    return mask


def _torch_heads(logits, mask):
    """torch.distributions reference per head, fully masked heads left unmasked."""
    heads = []
    for head_logits, head_mask in zip(logits.split(NVEC, -1), mask.split(NVEC, -1), strict=True):
        head_mask = head_mask | ~head_mask.any(-1, keepdim=True)
        heads.append((Categorical(logits=head_logits.masked_fill(~head_mask, -math.inf)), head_mask))
    return heads


def test_multi_categorical_matches_torch_per_head_with_masks():
    torch.manual_seed(4)
    num = 16
    logits_p, logits_q = torch.randn(2, num, sum(NVEC))
    mask = _multi_masks(num)
    p, q = MultiCategoricalDist(logits_p, NVEC, mask), MultiCategoricalDist(logits_q, NVEC, mask)
    ref_p, ref_q = _torch_heads(logits_p, mask), _torch_heads(logits_q, mask)

    actions = torch.stack([head.sample() for head, _ in ref_p], dim=-1)
    assert actions.shape == (num, 3)
    torch.testing.assert_close(p.log_prob(actions), sum(h.log_prob(actions[:, i]) for i, (h, _) in enumerate(ref_p)))
    ref_entropy = sum(-torch.where(m, h.probs * h.logits, 0.0).sum(-1) for h, m in ref_p)
    torch.testing.assert_close(p.entropy(), ref_entropy)
    ref_kl = sum(
        torch.where(m, hp.probs * (hp.logits - hq.logits), 0.0).sum(-1)
        for (hp, m), (hq, _) in zip(ref_p, ref_q, strict=True)
    )
    torch.testing.assert_close(p.kl(q), ref_kl)
    assert torch.isfinite(p.entropy()).all() and torch.isfinite(p.kl(q)).all()
    # The single-action head contributes nothing.
    torch.testing.assert_close(p.heads[1].entropy(), torch.zeros(num))


def test_multi_categorical_sample_and_mode_respect_masks():
    torch.manual_seed(6)
    num = 2000
    mask = _multi_masks(num)
    dist = MultiCategoricalDist(torch.randn(num, sum(NVEC)) * 3, NVEC, mask)
    for actions in (dist.sample(), dist.mode()):
        assert actions.shape == (num, 3) and actions.dtype == torch.int64
        offsets = torch.tensor([0, 3, 4])
        assert mask.gather(1, actions + offsets)[4:].all()
        assert (actions[:, 1] == 0).all()


def test_symmetric_kl_to_uniform_hand_computed():
    # p = (0.5, 0.25, 0.25) over 3 allowed actions, u = 1/3.
    probs = torch.tensor([[0.5, 0.25, 0.25]])
    dist = CategoricalDist(probs.log())
    u = torch.full((1, 3), 1 / 3)
    expected = (probs * (probs / u).log()).sum(-1) + (u * (u / probs).log()).sum(-1)
    torch.testing.assert_close(symmetric_kl_to_uniform(dist), expected)
    assert symmetric_kl_to_uniform(CategoricalDist(torch.zeros(4, 5))).abs().max() < 1e-6


def test_symmetric_kl_to_uniform_only_over_allowed_actions_and_capped():
    logits = torch.tensor([[1.0, 5.0, 1.0, -3.0]])
    mask = torch.tensor([[True, False, True, False]])
    # p is uniform over the two allowed actions, so it equals u there.
    assert symmetric_kl_to_uniform(CategoricalDist(logits, mask)).abs().item() < 1e-6
    peaked = CategoricalDist(torch.tensor([[0.0, 200.0]]))
    assert symmetric_kl_to_uniform(peaked).item() == 30.0
    multi = MultiCategoricalDist(torch.tensor([[0.0, 200.0, 0.0, 0.0]]), (2, 2))
    assert symmetric_kl_to_uniform(multi).item() == pytest.approx(30.0)


def test_symmetric_kl_to_uniform_rejects_gaussians():
    with pytest.raises(ValueError, match="discrete"):
        symmetric_kl_to_uniform(DiagGaussianDist(torch.zeros(1, 4)))
