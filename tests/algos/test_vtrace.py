import numpy as np
import pytest
import torch

from algos.returns import gae
from algos.vtrace import vtrace


def numpy_vtrace(log_rhos, discounts, rewards, values, bootstrap, rho_bar, c_bar, valids):
    """Reference: one trajectory at a time; vs_t from the IMPALA paper's explicit sum over s >= t."""
    num_traj, steps = rewards.shape
    vs = np.zeros_like(rewards)
    advantages = np.zeros_like(rewards)
    rhos = np.minimum(rho_bar, np.exp(log_rhos))
    cs = np.minimum(c_bar, np.exp(log_rhos))
    for b in range(num_traj):
        next_values = np.append(values[b, 1:], bootstrap[b])
        for t in range(steps):
            if not valids[b, t]:
                vs[b, t] = values[b, t]
                continue
            # vs_t = V_t + sum_{s>=t} (prod_{i=t}^{s-1} discount_i c_i) delta_s, stopping at an invalid step.
            total, trace = 0.0, 1.0
            for s in range(t, steps):
                if not valids[b, s]:
                    break
                delta = rhos[b, s] * (rewards[b, s] + discounts[b, s] * next_values[s] - values[b, s])
                total += trace * delta
                trace *= discounts[b, s] * cs[b, s]
            vs[b, t] = values[b, t] + total
        for t in range(steps):
            if valids[b, t]:
                next_vs = bootstrap[b] if t == steps - 1 else vs[b, t + 1]
                advantages[b, t] = rhos[b, t] * (rewards[b, t] + discounts[b, t] * next_vs - values[b, t])
    return vs, advantages


def random_inputs(seed, num_traj=6, steps=9):
    rng = np.random.default_rng(seed)
    dones = rng.random((num_traj, steps)) < 0.15
    return {
        "log_rhos": rng.normal(scale=0.7, size=(num_traj, steps)),
        "discounts": 0.97 * (1.0 - dones),
        "rewards": rng.normal(size=(num_traj, steps)),
        "values": rng.normal(size=(num_traj, steps)),
        "bootstrap_value": rng.normal(size=num_traj),
        "valids": rng.random((num_traj, steps)) > 0.15,
    }


def as_torch(inputs):
    return {k: torch.as_tensor(v, dtype=torch.bool if v.dtype == bool else torch.float32) for k, v in inputs.items()}


@pytest.mark.parametrize(("seed", "rho_bar", "c_bar"), [(0, 1.0, 1.0), (1, 2.0, 0.5), (2, 0.8, 1.3)])
def test_vtrace_matches_numpy_reference(seed, rho_bar, c_bar):
    inputs = random_inputs(seed)
    vs, advantages = vtrace(**as_torch(inputs), rho_bar=rho_bar, c_bar=c_bar)
    ref_vs, ref_adv = numpy_vtrace(
        inputs["log_rhos"],
        inputs["discounts"],
        inputs["rewards"],
        inputs["values"],
        inputs["bootstrap_value"],
        rho_bar,
        c_bar,
        inputs["valids"],
    )
    np.testing.assert_allclose(vs.numpy(), ref_vs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(advantages.numpy(), ref_adv, rtol=1e-5, atol=1e-5)


def test_on_policy_vtrace_without_clipping_is_lambda_one_returns():
    inputs = as_torch(random_inputs(3))
    inputs["log_rhos"] = torch.zeros_like(inputs["log_rhos"])
    vs, advantages = vtrace(**inputs, rho_bar=1e9, c_bar=1e9)
    dones = (inputs["discounts"] == 0).float()
    gae_adv, gae_returns = gae(
        inputs["rewards"], inputs["values"], inputs["bootstrap_value"], dones, inputs["valids"], 0.97, 1.0
    )
    torch.testing.assert_close(vs, gae_returns)
    torch.testing.assert_close(advantages, gae_adv)


def test_garbage_in_invalid_steps_does_not_leak():
    inputs = as_torch(random_inputs(4))
    clean_vs, clean_adv = vtrace(**inputs, rho_bar=1.0, c_bar=1.0)
    invalid = ~inputs["valids"]
    inputs["log_rhos"] = inputs["log_rhos"].masked_fill(invalid, float("nan"))
    inputs["rewards"] = inputs["rewards"].masked_fill(invalid, float("inf"))
    vs, advantages = vtrace(**inputs, rho_bar=1.0, c_bar=1.0)
    torch.testing.assert_close(vs, clean_vs)
    torch.testing.assert_close(advantages, clean_adv)
    assert (advantages[invalid] == 0).all()
