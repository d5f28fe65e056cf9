"""Pilot tests of the launcher: the generated form, validation as you type, and what launching runs."""

from __future__ import annotations

import json
import subprocess
import sys

from sftui.app import launcher as launcher_module
from sftui.app.app import SftuiApp
from sftui.app.launcher import LauncherScreen, field_id
from tests.sftui.test_dashboard import settle, sync


async def open_launcher(pilot, app, env):
    screen = app.screen
    assert isinstance(screen, LauncherScreen)
    if screen.env != env:  # the launcher opens on gym_CartPole-v1
        screen.query_one("#env").value = env
        screen.build_form(env)
    await settle(pilot)
    return screen


def field(screen, path):
    return screen.query_one(f"#{field_id(path)}")


@sync
async def test_the_form_holds_the_family_defaults_grouped_by_section(tmp_path):
    app = SftuiApp(None, None, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_launcher(pilot, app, "doom_basic")
        assert field(screen, "appo.batch_size").value == "512"
        assert field(screen, "model.use_rnn").value == "true"
        assert field(screen, "env.doom.episode_timeout_sec").value == "null"
        sections = [str(s.render()) for s in screen.query(".section")]
        assert sections[:3] == ["run", "sampler", "env"] and "appo" in sections
        assert screen.query_one("#launch").disabled is False


@sync
async def test_a_bad_value_shows_its_error_and_blocks_the_launch(tmp_path):
    app = SftuiApp(None, None, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_launcher(pilot, app, "gym_CartPole-v1")
        field(screen, "appo.gamma").value = "1.5"
        await settle(pilot)
        assert "appo.gamma" in str(screen.query_one("#error").render())
        assert field(screen, "appo.gamma").has_class("-invalid")
        assert screen.query_one("#launch").disabled is True
        field(screen, "appo.gamma").value = "0.98"
        await settle(pilot)
        assert screen.query_one("#launch").disabled is False and screen.error is None


@sync
async def test_launch_writes_the_config_and_runs_sftui_run_headless_detached(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(launcher_module.subprocess, "run",
                        lambda command, **kw: ran.append(command) or subprocess.CompletedProcess(command, 0, "", ""))
    app = SftuiApp(None, None, tmp_path)
    attached = []
    monkeypatch.setattr(app, "attach", lambda folder, name: attached.append((folder, name)))
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_launcher(pilot, app, "gym_CartPole-v1")
        screen.query_one("#experiment").value = "cp1"
        field(screen, "appo.learning_rate").value = "0.0005"
        await settle(pilot)
        await pilot.click("#launch")
        await settle(pilot)
    cfg_path = tmp_path / "cp1.cfg.json"
    assert ran == [[sys.executable, "-m", "sftui", "run", "--headless", "--detach", str(cfg_path),
                    "--train-dir", str(tmp_path)]]
    saved = json.loads(cfg_path.read_text())
    assert saved["env"]["name"] == "gym_CartPole-v1" and saved["run"]["experiment"] == "cp1"
    assert saved["appo"] == {"learning_rate": 0.0005}
    assert attached == [(tmp_path / "cp1", "cp1")]


@sync
async def test_save_and_load_a_cfg_json(tmp_path):
    app = SftuiApp(None, None, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_launcher(pilot, app, "gym_CartPole-v1")
        field(screen, "appo.batch_size").value = "256"
        screen.query_one("#cfg-path").value = str(tmp_path / "mine.json")
        await settle(pilot)
        await pilot.click("#save")
        await settle(pilot)
        assert json.loads((tmp_path / "mine.json").read_text())["appo"]["batch_size"] == 256
        field(screen, "appo.batch_size").value = "1024"
        await pilot.click("#load")
        await settle(pilot)
        assert field(screen, "appo.batch_size").value == "256"


def family_error(env: str) -> str | None:
    """The one line the launcher should show for a family example whose package is not installed here."""
    from sampler.config.settings import describe_settings
    from sampler.errors import MissingDependencyError

    try:
        describe_settings(env)
    except MissingDependencyError as e:
        return str(e)
    return None


@sync
async def test_each_family_picked_and_each_typed_env_name_fills_the_form_or_shows_one_plain_line(tmp_path):
    from sampler.envs.families.registry import families

    by_prefix = {f.prefix: f for f in families()}
    app = SftuiApp(None, None, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = app.screen
        family_list, env, error = screen.query_one("#family-list"), screen.query_one("#env"), screen.query_one("#error")
        assert family_list.option_count == len(by_prefix) >= 6
        for index in range(family_list.option_count):
            family = by_prefix[family_list.get_option_at_index(index).id]
            family_list.focus()
            family_list.highlighted = index
            await pilot.press("enter")
            await pilot.pause()
            shown = str(error.render())
            assert env.value == (family.example or f"{family.prefix}_"), family.prefix
            expected = family_error(family.example) if family.example else "names no example env"
            if expected is None:
                screen.validate()  # as the next refresh does
                assert screen.error is None and shown == "", (family.prefix, shown)
                assert screen.query_one("#fields").display and screen.defaults, family.prefix
                values = {i.id: i.value for i in screen.query("#fields Input")}
                assert values == {field_id(p): json.dumps(v) for p, v in screen.defaults.items()}, family.prefix
            else:  # its package is missing here: its own line, no form, the env field ready for another name
                assert expected in screen.error and expected in shown, (family.prefix, shown)
                assert not screen.query_one("#fields").display and env.has_focus
                assert screen.query_one("#launch").disabled

        # Typed names: shown as typed, never read as markup; a name the family cannot import is a line too.
        for typed, line in (("gym_Foo[/b]-v1", "'Foo[/b]-v1' is not a registered Gymnasium id"),
                            ("pettingzoo_", "'pettingzoo_': pettingzoo_<module> needs a dotted module name")):
            env.focus()
            env.value = typed
            await pilot.press("enter")
            await pilot.pause()
            assert line in str(error.render()), str(error.render())
            assert not screen.query_one("#fields").display and screen.query_one("#launch").disabled


@sync
async def test_save_refuses_a_folder_and_a_path_in_a_missing_folder_saying_why(tmp_path):
    app = SftuiApp(None, None, tmp_path)
    before = sorted(tmp_path.rglob("*"))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = app.screen
        cases = {str(tmp_path / "no" / "such" / "cfg.json"): f"the folder {tmp_path / 'no' / 'such'} does not exist",
                 str(tmp_path): f"{tmp_path} is a folder; give a file path"}
        for path, reason in cases.items():
            screen.query_one("#cfg-path").value = path
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert sorted(tmp_path.rglob("*")) == before  # no folder made, no temp file left
            line = screen.query_one("#file-message")
            assert line.display and str(line.render()).startswith(f"cannot save: {reason}"), str(line.render())
