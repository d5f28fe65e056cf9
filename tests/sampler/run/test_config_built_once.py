"""The config is built once per process: the CLI's prepare builds it, the run plan hands the same typed object to
every worker, and a worker never rebuilds it."""

from __future__ import annotations

import functools

import pytest

from algos.models import make_actor_critic
from sampler.config.schema import ExperimentConfig
from sampler.envs.contract import EnvFacts
from sampler.envs.families.registry import make_probe_env
from sampler.experiment.prepare import prepare
from sampler.run.forkserver import WorkerStarter
from sampler.run.plan import RunPlan
from sampler.run.workers.learner import LearnerWorker
from sampler.run.workers.rollout import RolloutWorker

SMALL = ["sampler.num_workers=1", "sampler.num_envs_per_worker=2", "model.encoder_mlp_layers=[8]",
         "appo.batch_size=64", "appo.rollout=16", "run.seed=1"]


def counting_builds(monkeypatch=None) -> list[int]:
    """Counts validations of a whole ExperimentConfig from here on (the one step every build ends in)."""
    calls: list[int] = []
    original = ExperimentConfig.model_validate.__func__

    def counted(cls, *args, **kwargs):
        calls.append(1)
        return original(cls, *args, **kwargs)

    if monkeypatch is not None:
        monkeypatch.setattr(ExperimentConfig, "model_validate", classmethod(counted))
    else:
        ExperimentConfig.model_validate = classmethod(counted)
    return calls


def start_worker(kind, pipe, spec, answers) -> None:
    """A worker's real start-up in a process of its own, forked as a run's are, reporting what config it holds
    and how often one was built."""
    builds = counting_builds()
    worker = kind(pipe, spec)
    answers.put((type(worker.cfg).__name__, worker.cfg.appo.rollout, worker.cfg.run.seed, len(builds)))


def test_prepare_builds_the_config_once_and_the_run_plan_reuses_it(tmp_path, monkeypatch):
    builds = counting_builds(monkeypatch)
    prepared = prepare({"env": {"name": "gym_CartPole-v1"}}, SMALL, train_dir=str(tmp_path), experiment_default="c")
    assert isinstance(prepared.cfg, ExperimentConfig) and len(builds) == 1
    RunPlan.build(prepared.cfg, prepared.env, lambda: None)
    assert len(builds) == 1  # laying the run out reads the built config


@pytest.fixture(scope="module")
def starter():
    """One fork server for both workers, as one run has: it imports torch once."""
    starter = WorkerStarter.begin()
    yield starter
    starter.end()


@pytest.mark.parametrize("kind", [RolloutWorker, LearnerWorker])
def test_a_worker_receives_the_typed_config_and_never_builds_one(tmp_path, kind, starter):
    prepared = prepare({"env": {"name": "gym_CartPole-v1"}}, SMALL, train_dir=str(tmp_path), experiment_default="c")
    cfg = prepared.cfg
    probe = make_probe_env(cfg)
    env = EnvFacts.of(probe, batched=False)
    probe.close()
    model = functools.partial(make_actor_critic, cfg.model, env.obs_specs, env.action_spec)
    ctx = starter.ctx
    plan = RunPlan.build(cfg, env, model, ctx, initial_weights=[model().state_dict()])
    spec = plan.rollout_spec(0) if kind is RolloutWorker else plan.learner_spec(0, str(prepared.folder))
    parent, child = ctx.Pipe(duplex=True)
    answers = ctx.SimpleQueue()
    process = ctx.Process(target=start_worker, args=(kind, child, spec, answers))
    process.start()
    try:
        assert answers.get() == ("ExperimentConfig", 16, 1, 0)
    finally:
        process.join(30)
        if process.is_alive():
            process.kill()
