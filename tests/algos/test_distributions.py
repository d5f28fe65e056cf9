import math

import pytest
import torch
from torch.distributions import Categorical, Independent, Normal, kl_divergence

from algos.distributions import CategoricalDist, DiagGaussianDist, make_distribution
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


def test_fully_masked_row_stays_finite():
    dist = CategoricalDist(torch.randn(2, 3), torch.zeros(2, 3, dtype=torch.bool))
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
