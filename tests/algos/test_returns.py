import numpy as np
import torch

from algos.returns import gae


def numpy_gae(rewards, values, next_value, dones, valids, gamma, lam):
    """Reference: one trajectory at a time, one step at a time."""
    num_traj, steps = rewards.shape
    advantages = np.zeros_like(rewards)
    for b in range(num_traj):
        running = 0.0
        for t in reversed(range(steps)):
            bootstrap = next_value[b] if t == steps - 1 else values[b, t + 1]
            not_done = 1.0 - dones[b, t]
            delta = rewards[b, t] + gamma * bootstrap * not_done - values[b, t]
            running = delta + gamma * lam * not_done * running
            if not valids[b, t]:
                running = 0.0
            advantages[b, t] = running
    return advantages, advantages + values


def random_case(rng, num_traj=6, steps=17, invalid_prob=0.0):
    rewards = rng.normal(size=(num_traj, steps)).astype(np.float32)
    values = rng.normal(size=(num_traj, steps)).astype(np.float32)
    next_value = rng.normal(size=num_traj).astype(np.float32)
    dones = (rng.random((num_traj, steps)) < 0.15).astype(np.float32)
    valids = rng.random((num_traj, steps)) >= invalid_prob
    return rewards, values, next_value, dones, valids


def run_both(case, gamma=0.97, lam=0.9):
    expected = numpy_gae(*case, gamma, lam)
    tensors = [torch.from_numpy(np.asarray(x)) for x in case]
    got = gae(*tensors, gamma, lam)
    return expected, got


def test_matches_numpy_with_episode_ends():
    case = random_case(np.random.default_rng(0))
    (adv_np, ret_np), (adv, ret) = run_both(case)
    np.testing.assert_allclose(adv.numpy(), adv_np, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret.numpy(), ret_np, rtol=1e-5, atol=1e-5)


def test_matches_numpy_with_invalid_steps():
    case = random_case(np.random.default_rng(1), invalid_prob=0.3)
    (adv_np, ret_np), (adv, ret) = run_both(case)
    valids = case[-1]
    assert (adv.numpy()[~valids] == 0).all()
    np.testing.assert_allclose(adv.numpy(), adv_np, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret.numpy(), ret_np, rtol=1e-5, atol=1e-5)


def test_float_and_bool_masks_agree():
    rewards, values, next_value, dones, valids = (
        torch.from_numpy(np.asarray(x)) for x in random_case(np.random.default_rng(2), invalid_prob=0.2)
    )
    as_float = gae(rewards, values, next_value, dones, valids.float(), 0.99, 0.95)
    as_bool = gae(rewards, values, next_value, dones.bool(), valids, 0.99, 0.95)
    torch.testing.assert_close(as_float, as_bool)


def test_hand_computed():
    # One trajectory, 3 steps, episode ends after step 1, gamma = 0.5, lambda = 1.
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    values = torch.tensor([[0.5, 1.0, 2.0]])
    next_value = torch.tensor([4.0])
    dones = torch.tensor([[0.0, 1.0, 0.0]])
    valids = torch.ones(1, 3, dtype=torch.bool)
    adv, ret = gae(rewards, values, next_value, dones, valids, gamma=0.5, lam=1.0)
    # step 2: 3 + 0.5*4 - 2 = 3
    # step 1: 2 - 1 = 1 (done: no bootstrap, no propagation)
    # step 0: (1 + 0.5*1 - 0.5) + 0.5*1 = 1.5
    torch.testing.assert_close(adv, torch.tensor([[1.5, 1.0, 3.0]]))
    torch.testing.assert_close(ret, torch.tensor([[2.0, 2.0, 5.0]]))


def test_invalid_step_cuts_propagation_but_still_bootstraps():
    rewards = torch.tensor([[1.0, 10.0]])
    values = torch.tensor([[0.0, 2.0]])
    next_value = torch.tensor([100.0])
    dones = torch.zeros(1, 2)
    valids = torch.tensor([[True, False]])
    adv, _ = gae(rewards, values, next_value, dones, valids, gamma=0.5, lam=1.0)
    # step 1 is invalid: advantage 0; step 0 bootstraps from its stored value 2.
    torch.testing.assert_close(adv, torch.tensor([[2.0, 0.0]]))
