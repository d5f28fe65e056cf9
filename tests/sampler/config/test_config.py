"""Config precedence and every kind of bad input: one clear line, exit 2, nothing created."""

from __future__ import annotations

import importlib.util
import json

import pytest

from sampler.config.build import build_config
from sampler.config.keys import parse_overrides
from sampler.config.settings import describe_settings
from sampler.errors import ConfigError, ExperimentError
from sampler.experiment.prepare import prepare
from tests.support import cli

CARTPOLE = {"env": {"name": "gym_CartPole-v1"}}


def test_precedence_schema_then_family_then_file_then_set():
    schema_default = build_config(CARTPOLE)
    assert schema_default.appo.gamma == 0.99  # schema default
    assert schema_default.appo.learning_rate == 3e-4  # gym family default over the schema's 1e-4
    assert schema_default.sampler.num_envs_per_worker == 16  # family default

    from_file = build_config({**CARTPOLE, "appo": {"learning_rate": 1e-3}, "sampler": {"num_envs_per_worker": 4}})
    assert from_file.appo.learning_rate == 1e-3 and from_file.sampler.num_envs_per_worker == 4

    with_set = build_config(
        {**CARTPOLE, "appo": {"learning_rate": 1e-3}},
        parse_overrides(["appo.learning_rate=5e-5", "model.encoder_mlp_layers=[32,32]"]),
    )
    assert with_set.appo.learning_rate == 5e-5
    assert with_set.model.encoder_mlp_layers == [32, 32]


def test_set_values_parse_as_json_or_fall_back_to_strings():
    assert parse_overrides(["run.device=cpu", "appo.num_epochs=2", "pbt.with_pbt=false"]) == {
        "run": {"device": "cpu"}, "appo": {"num_epochs": 2}, "pbt": {"with_pbt": False}}
    with pytest.raises(ConfigError, match="expected section.key=value"):
        parse_overrides(["learning_rate"])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"env": {"name": "gym_CartPole-v1"}, "appo": {"learning_rat": 0.1}},
         "appo.learning_rat: unknown setting (did you mean 'learning_rate'?)"),
        ({"env": {"name": "gym_CartPole-v1"}, "apo": {}}, "apo: unknown section (did you mean 'appo'?)"),
        ({"env": {"name": "gym_CartPole-v1"}, "appo": {"batch_size": "big"}}, "appo.batch_size: Input should be"),
        ({"env": {"name": "gym_CartPole-v1"}, "appo": {"gamma": 1.5}}, "appo.gamma: Input should be less than"),
        ({"env": {"name": "gym_CartPole-v1"}, "appo": {"batch_size": 1000}}, "divisible"),
        # summary.json's heartbeat must come well within the 10 s after which a run shows as not responding
        ({"env": {"name": "gym_CartPole-v1"}, "run": {"status_every_sec": 12}},
         "run.status_every_sec: Input should be less than or equal to 5"),
        ({"env": {"name": "gym_CartPole-v1"}, "sampler": {"num_envs_per_worker": 3, "worker_num_splits": 2}},
         "worker_num_splits"),
        ({"env": {"name": "gmy_CartPole-v1"}}, "unknown env family in 'gmy_CartPole-v1' (did you mean gym_...?)"),
        ({"env": {"name": "gym_CartPol-v1"}}, "did you mean gym_CartPole-v1?"),
        ({"appo": {}}, "env.name is missing"),
        ({"env": {"name": "gym_CartPole-v1"}, "run": {"imports": ["no_such_module_xyz"]}}, "run.imports"),
    ],
)
def test_each_bad_value_names_the_field(raw, message):
    with pytest.raises(ConfigError) as error:
        build_config(raw)
    assert message in str(error.value)


def test_resume_refuses_env_model_and_policy_count_changes(tmp_path):
    prepare({**CARTPOLE, "run": {"experiment": "e"}}, [], train_dir=str(tmp_path))
    for change in (["model.encoder_mlp_layers=[8]"], ["sampler.num_policies=2"], ["env.name=gym_Acrobot-v1"]):
        with pytest.raises(ConfigError, match="cannot change on resume"):
            prepare({**CARTPOLE, "run": {"experiment": "e"}}, change, train_dir=str(tmp_path))


def test_resume_applies_the_changed_budget_from_the_given_cfg(tmp_path):
    prepare({**CARTPOLE, "run": {"experiment": "e", "train_for_env_steps": 1000}}, [], train_dir=str(tmp_path))
    again = prepare({**CARTPOLE, "run": {"experiment": "e", "train_for_env_steps": 5000}}, [],
                    train_dir=str(tmp_path))
    assert again.resumed and again.cfg.run.train_for_env_steps == 5000
    assert again.changes == ["run.train_for_env_steps: 1000 -> 5000"]
    saved = json.loads((tmp_path / "e" / "cfg.json").read_text())
    assert saved["run"]["train_for_env_steps"] == 5000


@pytest.mark.parametrize(("name", "message"), [
    ("../escape", "must be a folder name under train_dir"),
    ("a/../../b", "must be a folder name under train_dir"),
    (".", "must be a folder name under train_dir"),
    ("/abs", "must be a folder name under train_dir"),
    ("sweep//x", "must be a folder name under train_dir"),
    (".hidden", "may not start a folder name with a dot"),
    ("lr*", "may not hold '*'"),
    ("tab\there", "may not hold '\\t'"),
    ("x" * 201, "has a folder name of 201 characters (at most 200)"),
    (" ", "is empty"),
    ("", "is empty"),
])
def test_an_experiment_name_that_is_no_folder_under_train_dir_is_refused_before_anything_is_made(tmp_path, name,
                                                                                                   message):
    train_dir = tmp_path / "td"
    with pytest.raises(ConfigError, match="run.experiment: ") as error:
        prepare({**CARTPOLE, "run": {"experiment": name}}, [], train_dir=str(train_dir))
    assert message in str(error.value) and len(str(error.value)) < 250
    assert not train_dir.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="run.experiment: "):  # in a cfg built any other way too (sweeps)
        build_config({**CARTPOLE, "run": {"experiment": name}})


def test_nested_and_plain_names_are_folders_under_train_dir(tmp_path):
    for name in ("cartpole", "my sweep/seed_1__learning_rate_0.0003", "pong-v5+fs=4"):
        assert prepare({**CARTPOLE, "run": {"experiment": name}}, [], train_dir=str(tmp_path)).folder == tmp_path / name
        assert (tmp_path / name / "cfg.json").is_file()


def test_a_train_dir_that_cannot_hold_folders_or_is_empty_is_refused(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(ExperimentError, match="afile/e: cannot create the experiment folder \\(Not a directory\\)"):
        prepare({**CARTPOLE, "run": {"experiment": "e"}}, [], train_dir=str(afile))
    with pytest.raises(ExperimentError, match="--train-dir is empty"):
        prepare({**CARTPOLE, "run": {"experiment": "e"}}, [], train_dir="")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_an_env_that_cannot_be_built_as_configured_is_refused_in_its_own_words_before_anything_is_made(tmp_path):
    with pytest.raises(ConfigError) as error:
        prepare({**CARTPOLE, "run": {"experiment": "e"}}, ['env.gym.kwargs={"bogus_kw": 1}'], train_dir=str(tmp_path))
    text = str(error.value)
    assert text.startswith("env: gym_CartPole-v1 cannot be built as configured: TypeError: ") and "bogus_kw" in text
    assert "\n" not in text and list(tmp_path.iterdir()) == []


def test_a_gymnasium_name_for_an_atari_game_points_at_the_atari_family():
    with pytest.raises(ConfigError, match="did you mean atari_space_invaders"):
        build_config({"env": {"name": "gym_SpaceInvaders-v5"}})
    with pytest.raises(ConfigError, match="did you mean gym_CartPole-v1"):
        build_config({"env": {"name": "gym_CartPole-v9"}})


def test_a_check_that_names_its_field_is_not_named_twice():
    with pytest.raises(ConfigError) as error:
        build_config({**CARTPOLE, "model": {"encoder": "nope"}})
    assert str(error.value).startswith("model.encoder: unknown encoder 'nope'")


def test_settings_describe_every_field_with_family_defaults():
    rows = {path: (kind, default, doc) for path, kind, default, doc in describe_settings("gym_CartPole-v1")}
    assert rows["appo.learning_rate"][1] == 3e-4
    assert rows["sampler.max_policy_lag"][2]
    assert "env.gym.max_episode_steps" in rows
    assert all(doc for _, _, doc in rows.values()), [p for p, (_, _, d) in rows.items() if not d]


# ---- through the CLI, its main run in this process: exit code 2, one line, nothing created ------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2)"),
        (b"\x80\x81{}", "not a text file (byte 0 is not UTF-8)"),
        ('{"env": {"name": "gym_CartPole-v1"}, "appo": {"rollout": 1}}', "appo.rollout"),
        ('{"env": {"name": "dooom_nope"}}', "unknown env family"),
        ("[1, 2]", "top level must be a JSON object"),
    ],
)
def test_bad_cfg_file_exits_2_with_one_line_and_creates_nothing(tmp_path, content, message):
    cfg = tmp_path / "exp.json"
    cfg.write_bytes(content if isinstance(content, bytes) else content.encode())
    train_dir = tmp_path / "train_dir"
    result = cli("run", "--headless", str(cfg), "--train-dir", str(train_dir))
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not train_dir.exists()


def test_missing_cfg_file_and_bad_set_exit_2(tmp_path):
    result = cli("run", "--headless", str(tmp_path / "missing.json"), "--train-dir", str(tmp_path / "td"))
    assert result.returncode == 2 and "no such file" in result.stderr
    result = cli("train", "gym_CartPole-v1", "--set", "appo.gamma=2", "--train-dir", str(tmp_path / "td"))
    assert result.returncode == 2 and "appo.gamma" in result.stderr
    assert not (tmp_path / "td").exists()


def test_config_command_prints_a_complete_runnable_config(tmp_path):
    result = cli("config", "gym_CartPole-v1")
    assert result.returncode == 0
    cfg = json.loads(result.stdout)
    assert set(cfg) == {"run", "sampler", "env", "appo", "model", "pbt", "pool"}
    assert build_config(cfg).env.name == "gym_CartPole-v1"


def test_a_box_action_space_gets_the_continuous_control_defaults_and_set_still_wins():
    pendulum = build_config({"env": {"name": "gym_Pendulum-v1"}})
    assert pendulum.model.nonlinearity == "tanh" and pendulum.model.encoder_mlp_layers == [64, 64]
    assert pendulum.appo.value_bootstrap and pendulum.appo.num_epochs == 10
    assert pendulum.appo.batch_size * pendulum.appo.num_batches_per_epoch == 4096
    assert (pendulum.appo.learning_rate, pendulum.appo.batch_size) == (3e-4, 1024)
    cartpole = build_config(CARTPOLE)  # Discrete actions: the family's generic defaults (time-outs bootstrap too)
    assert cartpole.model.nonlinearity == "elu" and cartpole.appo.num_epochs == 1 and cartpole.appo.value_bootstrap
    acrobot = build_config({"env": {"name": "gym_Acrobot-v1"}})  # a tuned id: its own settings over its kind's
    assert (acrobot.appo.num_epochs, acrobot.appo.batch_size, acrobot.appo.num_batches_per_epoch) == (4, 256, 4)
    assert acrobot.model.nonlinearity == "elu" and acrobot.appo.value_bootstrap
    if importlib.util.find_spec("mujoco") is not None:  # MuJoCo's envs: their own minibatches
        walker = build_config({"env": {"name": "gym_Walker2d-v4"}})
        assert (walker.appo.learning_rate, walker.appo.batch_size, walker.appo.num_batches_per_epoch) == (3e-4, 256, 16)
        assert walker.model.nonlinearity == "tanh" and walker.appo.num_epochs == 10
    mine = build_config({"env": {"name": "gym_Pendulum-v1"}, "appo": {"num_epochs": 3}},
                        parse_overrides(["model.nonlinearity=relu"]))
    assert mine.appo.num_epochs == 3 and mine.model.nonlinearity == "relu" and mine.appo.value_bootstrap
