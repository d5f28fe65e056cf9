import io
import math

import pytest
import torch
from pydantic import ValidationError

from algos.appo import AppoConfig, AppoLearner, TrainBatch
from algos.model_config import ModelConfig
from algos.models import ActorCritic
from algos.spaces import ActionSpec, ObsSpec

DEVICE = torch.device("cpu")
OBS_SPECS = {"obs": ObsSpec((5,), "float32")}
DISCRETE = ActionSpec(kind="discrete", n=4)
BOX = ActionSpec(kind="box", shape=(2,), low=(-1.0, -1.0), high=(1.0, 1.0))


def collect(model, obs, action_mask=None):
    """Act on obs [B, T+1, ...] for steps 0..T-1 like the inference worker would."""
    num_traj, steps = obs["obs"].shape[0], obs["obs"].shape[1] - 1
    flat_obs = {k: v[:, :steps].reshape(num_traj * steps, *v.shape[2:]) for k, v in obs.items()}
    flat_mask = None if action_mask is None else action_mask.reshape(num_traj * steps, -1)
    out = model.act(flat_obs, action_mask=flat_mask)
    return {k: v.reshape(num_traj, steps, *v.shape[1:]) for k, v in out.items()}


def synthetic_batch(model, num_traj=8, steps=8, with_masks=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    obs = {"obs": torch.randn(num_traj, steps + 1, 5, generator=gen) * 3 + 1}
    masks = None
    if with_masks:
        masks = torch.rand(num_traj, steps, DISCRETE.n, generator=gen) > 0.3
        masks[..., 0] = True
    acted = collect(model, obs, masks)
    dones = (torch.rand(num_traj, steps, generator=gen) < 0.1).float()
    valids = torch.rand(num_traj, steps, generator=gen) > 0.2
    return TrainBatch(
        obs=obs,
        actions=acted["actions"],
        log_probs=acted["log_probs"],
        values=acted["values"],
        dist_params=acted["dist_params"],
        rewards=torch.randn(num_traj, steps, generator=gen),
        dones=dones,
        time_outs=dones * (torch.rand(num_traj, steps, generator=gen) < 0.5),
        valids=valids,
        action_masks=masks,
    )


def make_learner(action_spec=DISCRETE, total_env_frames=None, **cfg):
    torch.manual_seed(0)
    model = ActorCritic(ModelConfig(encoder_mlp_layers=[32, 32]), OBS_SPECS, action_spec)
    defaults = {"rollout": 8, "batch_size": 32, "num_batches_per_epoch": 2, "learning_rate": 1e-3}
    return AppoLearner(model, AppoConfig(**{**defaults, **cfg}), DEVICE, total_env_frames=total_env_frames)


EXPECTED_STATS = {
    "loss",
    "policy_loss",
    "value_loss",
    "entropy_loss",
    "entropy",
    "kl",
    "grad_norm",
    "clip_fraction",
    "lr",
    "adv_mean",
    "adv_std",
    "value_mean",
    "valid_fraction",
    "num_sgd_steps",
    "nonfinite_sgd_steps",
}


@pytest.mark.parametrize(
    ("cfg", "extra_stats"),
    [
        ({}, set()),
        ({"value_bootstrap": True, "num_epochs": 2, "normalize_returns": False}, set()),
        ({"with_vtrace": True, "normalize_returns": False, "num_epochs": 2, "value_bootstrap": True}, set()),
        ({"exploration_loss": "symmetric_kl", "exploration_loss_coeff": 0.01}, {"exploration_loss"}),
        ({"kl_loss_coeff": 0.5}, {"kl_loss"}),
    ],
)
def test_train_returns_finite_stats_and_changes_weights(cfg, extra_stats):
    learner = make_learner(**cfg)
    before = [p.detach().clone() for p in learner.model.parameters()]
    stats = learner.train(synthetic_batch(learner.model, with_masks=True))
    assert set(stats) == EXPECTED_STATS | extra_stats
    assert all(isinstance(v, float) and math.isfinite(v) for v in stats.values())
    assert stats["num_sgd_steps"] == 2 * learner.cfg.num_epochs
    assert learner.version == 1
    assert any(not torch.equal(b, p) for b, p in zip(before, learner.model.parameters(), strict=True))
    assert learner.model.obs_normalizers["obs"].count > 0
    assert (learner.model.returns_normalizer.count > 0) == learner.cfg.normalize_returns


def test_a_non_finite_loss_skips_its_sgd_steps_and_leaves_the_weights_alone():
    learner = make_learner(normalize_returns=False)
    batch = synthetic_batch(learner.model)
    batch.rewards[:, 0] = float("nan")  # every trajectory: every minibatch's loss is NaN
    before = [p.detach().clone() for p in learner.model.parameters()]
    stats = learner.train(batch)
    assert stats["num_sgd_steps"] == 0 and stats["nonfinite_sgd_steps"] > 0 and learner.version == 0
    assert all(torch.equal(b, p) for b, p in zip(before, learner.model.parameters(), strict=True))


def test_all_invalid_batch_changes_nothing():
    learner = make_learner()
    batch = synthetic_batch(learner.model)
    batch.valids = torch.zeros_like(batch.valids)
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    stats = learner.train(batch)
    assert stats["num_sgd_steps"] == 0 and learner.version == 0
    for key, value in learner.model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_box_actions_train():
    learner = make_learner(action_spec=BOX)
    stats = learner.train(synthetic_batch(learner.model))
    assert all(math.isfinite(v) for v in stats.values())
    assert learner.model.log_std.grad is not None


def test_contextual_bandit_learns():
    torch.manual_seed(0)
    num_states, num_traj, steps = 4, 32, 4
    model = ActorCritic(
        ModelConfig(encoder_mlp_layers=[32]), {"obs": ObsSpec((num_states,), "float32")}, DISCRETE
    )
    cfg = AppoConfig(
        rollout=steps,
        batch_size=64,
        num_batches_per_epoch=2,
        num_epochs=2,
        learning_rate=3e-3,
        ppo_clip_ratio=0.2,
    )
    learner = AppoLearner(model, cfg, DEVICE)
    rewards_history = []
    for _ in range(60):
        states = torch.randint(0, num_states, (num_traj, steps + 1))
        obs = {"obs": torch.nn.functional.one_hot(states, num_states).float()}
        acted = collect(model, obs)
        rewards = (acted["actions"] == states[:, :steps]).float()
        rewards_history.append(rewards.mean().item())
        ones = torch.ones(num_traj, steps)
        learner.train(
            TrainBatch(
                obs=obs,
                actions=acted["actions"],
                log_probs=acted["log_probs"],
                values=acted["values"],
                dist_params=acted["dist_params"],
                rewards=rewards,
                dones=ones,
                time_outs=torch.zeros_like(ones),
                valids=ones.bool(),
            )
        )
    assert sum(rewards_history[-5:]) / 5 > 0.9, rewards_history


def test_state_dict_round_trip_through_torch_save():
    learner = make_learner(lr_schedule="kl_adaptive")
    learner.train(synthetic_batch(learner.model))
    buffer = io.BytesIO()
    torch.save(learner.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)

    fresh = make_learner(lr_schedule="kl_adaptive")
    fresh.load_state_dict(loaded)
    assert fresh.version == learner.version == 1
    assert fresh.lr_schedule.lr == learner.lr_schedule.lr != 1e-3  # kl_adaptive moved it
    assert fresh.optimizer.param_groups[0]["lr"] == learner.lr_schedule.lr
    original = learner.model.state_dict()
    for key, value in fresh.model.state_dict().items():
        assert torch.equal(value, original[key]), key
    assert torch.equal(fresh.model.obs_normalizers["obs"].mean, learner.model.obs_normalizers["obs"].mean)
    for p_fresh, p_orig in zip(fresh.model.parameters(), learner.model.parameters(), strict=True):
        s_fresh, s_orig = fresh.optimizer.state[p_fresh], learner.optimizer.state[p_orig]
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(s_fresh[name], s_orig[name])

    # Both continue identically from the restored state.
    batch = synthetic_batch(learner.model, seed=1)
    assert fresh.train(batch) == learner.train(batch)


def test_lr_schedules():
    decay = make_learner(lr_schedule="linear_decay", total_env_frames=1000)
    stats = decay.train(synthetic_batch(decay.model), env_frames=250)
    assert stats["lr"] == pytest.approx(0.75e-3)
    assert decay.optimizer.param_groups[0]["lr"] == pytest.approx(0.75e-3)

    adaptive = make_learner(lr_schedule="kl_adaptive", lr_schedule_kl_threshold=1e3)
    stats = adaptive.train(synthetic_batch(adaptive.model))  # tiny KL: lr grows 1.5x per SGD step
    assert stats["lr"] == adaptive.lr_schedule.lr == pytest.approx(1e-3 * 1.5**2)
    assert adaptive.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 1.5**2)

    # A change to another setting keeps the rate kl_adaptive reached; a new learning_rate restarts it.
    adaptive.set_hyperparameters(ppo_clip_ratio=0.2)
    assert adaptive.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 1.5**2)
    adaptive.set_hyperparameters(learning_rate=2e-4)
    assert adaptive.lr_schedule.lr == adaptive.optimizer.param_groups[0]["lr"] == 2e-4


def test_a_checkpoint_in_the_format_written_before_the_schedule_object_loads():
    # Checkpoints hold the learner's state as {"model", "optimizer", "lr", "version"}; built here by hand.
    torch.manual_seed(1)
    model = ActorCritic(ModelConfig(encoder_mlp_layers=[32, 32]), OBS_SPECS, DISCRETE)
    optimizer = torch.optim.Adam(model.parameters(), lr=2.5e-4, betas=(0.9, 0.999), eps=1e-6)
    _, values = model({"obs": torch.randn(4, 5)})
    values.sum().backward()
    optimizer.step()
    saved = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "lr": 2.5e-4, "version": 7}
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    buffer.seek(0)

    learner = make_learner(lr_schedule="kl_adaptive")
    learner.load_state_dict(torch.load(buffer, weights_only=True))
    assert learner.version == 7
    assert learner.lr_schedule.lr == learner.optimizer.param_groups[0]["lr"] == 2.5e-4
    for key, value in learner.model.state_dict().items():
        assert torch.equal(value, saved["model"][key]), key
    assert learner.optimizer.state_dict()["state"][0]["step"] == 1
    state = learner.state_dict()
    assert list(state) == ["model", "optimizer", "lr", "version"]
    assert state["lr"] == 2.5e-4 and state["version"] == 7
    assert learner.train(synthetic_batch(learner.model))["num_sgd_steps"] == 2


def test_set_hyperparameters():
    learner = make_learner()
    learner.set_hyperparameters(learning_rate=5e-4, exploration_loss_coeff=0.01)
    assert learner.cfg.exploration_loss_coeff == 0.01
    assert all(g["lr"] == 5e-4 for g in learner.optimizer.param_groups)
    assert learner.train(synthetic_batch(learner.model))["lr"] == 5e-4
    with pytest.raises(ValidationError):
        learner.set_hyperparameters(learning_rate=-1.0)
    with pytest.raises(ValidationError):
        learner.set_hyperparameters(no_such_field=1)


def test_appo_config_validation():
    with pytest.raises(ValidationError) as info:
        AppoConfig(rollout=32, batch_size=100)
    assert "batch_size" in str(info.value) and "rollout" in str(info.value)
    with pytest.raises(ValidationError, match=r"appo.recurrence \(5\) must divide appo.rollout \(32\)"):
        AppoConfig(rollout=32, recurrence=5)
    assert AppoConfig(rollout=32, recurrence=8).recurrence == 8
    with pytest.raises(ValidationError, match="appo.with_vtrace cannot be combined with appo.normalize_returns"):
        AppoConfig(with_vtrace=True)
    assert AppoConfig(with_vtrace=True, normalize_returns=False).with_vtrace
    with pytest.raises(ValidationError):
        AppoConfig(vtrace_rho=0.0)
    with pytest.raises(ValidationError):
        AppoConfig(kl_loss_coeff=-1.0)
    with pytest.raises(ValidationError):
        AppoConfig(exploration_loss="max_entropy")
    with pytest.raises(ValidationError):
        AppoConfig(unknown=1)
    with pytest.raises(ValidationError):
        AppoConfig(gamma=1.5)
    assert all(field.description for field in AppoConfig.model_fields.values())


def test_value_bootstrap_adds_discounted_value_on_time_outs():
    plain = make_learner(normalize_returns=False, gae_lambda=0.0)
    bootstrapped = make_learner(normalize_returns=False, gae_lambda=0.0, value_bootstrap=True)
    batch = synthetic_batch(plain.model)
    batch.valids = torch.ones_like(batch.valids)
    batch.time_outs = torch.zeros_like(batch.dones)
    batch.time_outs[:, ::3] = 1.0
    batch.dones = torch.maximum(batch.dones, batch.time_outs)
    adv_plain, _, _ = plain._targets(batch)
    adv_boot, _, _ = bootstrapped._targets(batch)
    # With lambda = 0 each advantage is a one-step TD error, so only time-out steps change.
    expected = adv_plain + 0.99 * batch.values * batch.time_outs
    torch.testing.assert_close(adv_boot, expected)


def test_a_time_out_bootstraps_from_the_last_obs_when_the_env_keeps_it():
    """Hand-computed one-step TD errors (gae_lambda 0, gamma 0.9) of one trajectory of 4 steps with values
    10, 20, 30, 40 and rewards 1, 2, 3, 4: a time-out at step 1, the reset step of next-step autoreset at step 2
    (out of the loss), and a time-out at the last step."""
    learner = make_learner(normalize_returns=False, gae_lambda=0.0, gamma=0.9, value_bootstrap=True)
    batch = synthetic_batch(learner.model, num_traj=1, steps=4)
    batch.values = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    batch.rewards = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    batch.valids = torch.tensor([[True, True, False, True]])
    batch.dones = torch.tensor([[0.0, 1.0, 1.0, 1.0]])
    batch.time_outs = torch.tensor([[0.0, 1.0, 0.0, 1.0]])
    last = float(learner._bootstrap_values(batch)[0].detach())  # V of obs[:, 4], the obs after the last step

    # Same-step autoreset (the default): the obs after a time-out is the next episode's, V(s_t) stands in.
    advantages, _, _ = learner._targets(batch)
    assert advantages[0, 1].item() == pytest.approx(2 + 0.9 * 20 - 20)
    assert advantages[0, 3].item() == pytest.approx(4 + 0.9 * 40 - 40)
    # Next-step autoreset: the obs after a time-out is the episode's last, and its value is known. Step 1's is the
    # acting-time value of step 2, the reset step (30); the last step's is the bootstrap value of obs[:, 4].
    batch.last_obs_follows_done = True
    advantages, _, _ = learner._targets(batch)
    assert advantages[0, 1].item() == pytest.approx(2 + 0.9 * 30 - 20)
    assert advantages[0, 3].item() == pytest.approx(4 + 0.9 * last - 40, abs=1e-4)
    assert advantages[0, 0].item() == pytest.approx(1 + 0.9 * 20 - 10)  # no time-out: the usual TD error
    assert advantages[0, 2].item() == 0.0  # the reset step


def test_symmetric_kl_needs_discrete_actions():
    with pytest.raises(ValueError, match="symmetric_kl' needs a discrete or multi_discrete action space"):
        make_learner(action_spec=BOX, exploration_loss="symmetric_kl")
    learner = make_learner(action_spec=BOX)
    with pytest.raises(ValueError, match="symmetric_kl"):
        learner.set_hyperparameters(exploration_loss="symmetric_kl")
    assert learner.cfg.exploration_loss == "entropy"


def test_multi_discrete_actions_train():
    torch.manual_seed(0)
    spec = ActionSpec(kind="multi_discrete", nvec=(3, 2))
    model = ActorCritic(ModelConfig(encoder_mlp_layers=[16]), OBS_SPECS, spec)
    learner = AppoLearner(model, AppoConfig(rollout=8, batch_size=32, exploration_loss="symmetric_kl"), DEVICE)
    gen = torch.Generator().manual_seed(0)
    obs = {"obs": torch.randn(4, 9, 5, generator=gen)}
    masks = torch.rand(4, 8, 5, generator=gen) > 0.3
    acted = collect(model, obs, masks)
    assert acted["actions"].shape == (4, 8, 2)
    ones = torch.ones(4, 8)
    stats = learner.train(
        TrainBatch(
            obs=obs,
            actions=acted["actions"],
            log_probs=acted["log_probs"],
            values=acted["values"],
            dist_params=acted["dist_params"],
            rewards=torch.randn(4, 8, generator=gen),
            dones=torch.zeros(4, 8),
            time_outs=torch.zeros(4, 8),
            valids=ones.bool(),
            action_masks=masks,
        )
    )
    assert all(math.isfinite(v) for v in stats.values())


PIXEL_SPECS = {"pixels": ObsSpec((3, 24, 32), "uint8"), "obs": ObsSpec((5,), "float32")}


def recurrent_model(rnn_type="gru", policy_init_gain=0.01, normalize_input=True):
    torch.manual_seed(0)
    cfg = ModelConfig(
        normalize_input=normalize_input,
        encoder_mlp_layers=[16],
        encoder_conv_architecture="resnet_impala",
        encoder_conv_mlp_layers=[32],
        use_rnn=True,
        rnn_type=rnn_type,
        rnn_size=16,
        policy_init_gain=policy_init_gain,
    )
    return ActorCritic(cfg, PIXEL_SPECS, DISCRETE)


def collect_recurrent(model, obs, dones, initial_states):
    """Act step by step like the sampler: store the state before each obs, zero it after episode ends."""
    num_traj, steps = dones.shape
    states = torch.zeros(num_traj, steps + 1, model.rnn_state_size)
    states[:, 0] = initial_states
    outs = []
    for t in range(steps):
        out = model.act({k: v[:, t] for k, v in obs.items()}, rnn_states=states[:, t])
        states[:, t + 1] = out["rnn_states"] * (1.0 - dones[:, t : t + 1])
        outs.append(out)
    acted = {key: torch.stack([out[key] for out in outs], dim=1) for key in outs[0] if key != "rnn_states"}
    return acted, states


def recurrent_batch(model, num_traj=4, steps=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    obs = {
        "pixels": torch.randint(0, 256, (num_traj, steps + 1, 3, 24, 32), generator=gen, dtype=torch.uint8),
        "obs": torch.randn(num_traj, steps + 1, 5, generator=gen),
    }
    dones = (torch.rand(num_traj, steps, generator=gen) < 0.2).float()
    # Slices continue episodes, so they start from a non-zero stored state.
    acted, states = collect_recurrent(model, obs, dones, torch.randn(num_traj, model.rnn_state_size, generator=gen))
    return TrainBatch(
        obs=obs,
        rewards=torch.randn(num_traj, steps, generator=gen),
        dones=dones,
        time_outs=torch.zeros_like(dones),
        valids=torch.rand(num_traj, steps, generator=gen) > 0.1,
        rnn_states=states,
        **acted,
    )


@pytest.mark.parametrize(
    ("rnn_type", "cfg", "extra_stats"),
    [
        ("gru", {}, set()),
        ("lstm", {"with_vtrace": True, "normalize_returns": False, "num_epochs": 2}, set()),
        ("gru", {"exploration_loss": "symmetric_kl", "kl_loss_coeff": 0.1}, {"exploration_loss", "kl_loss"}),
    ],
)
def test_recurrent_conv_model_trains_on_chunks(rnn_type, cfg, extra_stats):
    model = recurrent_model(rnn_type)
    learner = AppoLearner(
        model, AppoConfig(rollout=8, recurrence=4, batch_size=16, num_batches_per_epoch=2, **cfg), DEVICE
    )
    before = [p.detach().clone() for p in model.parameters()]
    stats = learner.train(recurrent_batch(model))
    assert set(stats) == EXPECTED_STATS | extra_stats
    assert all(math.isfinite(v) for v in stats.values())
    assert stats["num_sgd_steps"] == 2 * learner.cfg.num_epochs
    changed = [not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True)]
    assert all(changed), "every parameter, the recurrent core and conv net included, gets a gradient"


def test_chunked_replay_reproduces_the_acting_policy():
    # One minibatch, one epoch: the KL is measured before the only update, so it compares the
    # learner's chunked replay from stored states with what act() produced step by step.
    # (Input normalization is off: its update at the start of train() would shift the inputs.)
    model = recurrent_model(policy_init_gain=1.0, normalize_input=False)
    cfg = AppoConfig(rollout=8, recurrence=4, batch_size=32, num_batches_per_epoch=1)
    batch = recurrent_batch(model)
    assert AppoLearner(model, cfg, DEVICE).train(batch)["kl"] < 1e-6

    wrong = recurrent_model(policy_init_gain=1.0, normalize_input=False)
    batch.rnn_states = torch.zeros_like(batch.rnn_states)
    assert AppoLearner(wrong, cfg, DEVICE).train(batch)["kl"] > 1e-4


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
def test_bf16_learner_replays_the_fp32_policy_closely_and_trains(rnn_type):
    model = recurrent_model(rnn_type, policy_init_gain=1.0, normalize_input=False)
    cfg = AppoConfig(rollout=8, recurrence=4, batch_size=32, num_batches_per_epoch=1)
    batch = recurrent_batch(model)
    before = [p.detach().clone() for p in model.parameters()]
    stats = AppoLearner(model, cfg, DEVICE, bf16=True).train(batch)
    assert all(math.isfinite(v) for v in stats.values())
    # bf16 rounding only: the replay still follows the acting policy, if less exactly than fp32 (|KL| ~ 3e-9)
    assert 2e-8 < stats["kl"] < 1e-3
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


def test_recurrent_model_needs_rnn_states_in_the_batch():
    model = recurrent_model()
    batch = recurrent_batch(model)
    batch.rnn_states = None
    learner = AppoLearner(model, AppoConfig(rollout=8, recurrence=4, batch_size=16), DEVICE)
    with pytest.raises(ValueError, match="rnn_states"):
        learner.train(batch)


def test_vtrace_on_policy_without_clipping_matches_gae_lambda_one():
    vtrace_learner = make_learner(
        with_vtrace=True, normalize_returns=False, vtrace_rho=1e9, vtrace_c=1e9, num_batches_per_epoch=1
    )
    gae_learner = make_learner(normalize_returns=False, gae_lambda=1.0, num_batches_per_epoch=1)
    batch = synthetic_batch(vtrace_learner.model)
    # The batch was collected by this very model, so V-trace sees log_rhos = 0 and current values.
    obs = {k: v[:, :8].reshape(64, -1) for k, v in batch.obs.items()}
    adv, vs = vtrace_learner._vtrace_targets(batch, obs, None, [(slice(0, 64), slice(0, 64))])
    gae_adv, gae_returns, _ = gae_learner._targets(batch)
    torch.testing.assert_close(adv, gae_adv)
    torch.testing.assert_close(vs, gae_returns)


def test_recurrent_policy_learns_to_remember_a_cue():
    # Episodes of 3 steps: the first obs shows cue 0 or 1, later obs are blank; the action at
    # the last step earns 1 if it matches the cue. A memoryless policy tops out at 0.5.
    torch.manual_seed(0)
    num_traj, steps = 64, 6
    model = ActorCritic(
        ModelConfig(encoder_mlp_layers=[16], use_rnn=True, rnn_size=16),
        {"obs": ObsSpec((3,), "float32")},
        ActionSpec(kind="discrete", n=2),
    )
    cfg = AppoConfig(
        rollout=steps, recurrence=3, batch_size=192, num_batches_per_epoch=2, num_epochs=2, learning_rate=3e-3
    )
    learner = AppoLearner(model, cfg, DEVICE)
    dones = torch.zeros(num_traj, steps)
    dones[:, 2::3] = 1.0
    last_step = dones.bool()
    success = []
    for _ in range(40):
        cues = torch.randint(0, 2, (num_traj, steps // 3 + 1)).repeat_interleave(3, dim=1)[:, : steps + 1]
        obs = torch.zeros(num_traj, steps + 1, 3)
        obs[:, :, 2] = 1.0
        first = torch.arange(steps + 1) % 3 == 0
        obs[:, first] = torch.nn.functional.one_hot(cues[:, first], 3).float()
        acted, states = collect_recurrent(model, {"obs": obs}, dones, torch.zeros(num_traj, model.rnn_state_size))
        rewards = ((acted["actions"] == cues[:, :steps]) & last_step).float()
        success.append(rewards[last_step].mean().item())
        learner.train(
            TrainBatch(
                obs={"obs": obs},
                rewards=rewards,
                dones=dones,
                time_outs=torch.zeros_like(dones),
                valids=torch.ones_like(last_step),
                rnn_states=states,
                **acted,
            )
        )
    assert sum(success[-5:]) / 5 > 0.9, success
