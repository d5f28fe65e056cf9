"""Bad input on the command line: one line on stderr naming what is wrong, exit 2, and nothing written.

Most checks run sftui's main in this process (tests.support.cli, or as below with capsys); the help and
exit-code test runs `python -m sftui` itself."""

from __future__ import annotations

import json

import pytest

from tests.support import cli, sftui


def _one_line(result) -> str:
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr and "╭" not in result.stderr, (
        result.stderr)
    return result.stderr


@pytest.mark.parametrize(("args", "line"), [
    (["status"], "sftui status: Missing argument 'experiment'. (see sftui status --help)"),
    (["train", "--set"], "sftui train: Option '--set' requires an argument. (see sftui train --help)"),
    (["bogus"], "sftui: No such command 'bogus'. (see sftui --help)"),
    (["sweep", "run"], "sftui sweep run: Missing argument 'file'. (see sftui sweep run --help)"),
    (["enjoy", "x", "-n", "-1"], "sftui enjoy: Invalid value for '--episodes' / '-n': "),
    (["enjoy", "x", "-n", "abc"], "sftui enjoy: Invalid value for '--episodes' / '-n': "),
    (["serve", "--port", "0"], "sftui serve: Invalid value for '--port': "),
    (["tb", "x", "--port", "99999"], "sftui tb: Invalid value for '--port': "),
])
def test_usage_errors_are_one_line_and_exit_2(args, line, monkeypatch, capsys):
    import sys

    from sftui.cli import main

    monkeypatch.setattr(sys, "argv", ["sftui", *args])  # in this process: a usage error loads nothing
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # typer installs its own
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    assert exit_.value.code == 2 and not out.out
    assert out.err.count("\n") == 1 and out.err.startswith(line) and "╭" not in out.err, out.err


def test_help_and_exit_codes_are_kept(tmp_path):
    result = sftui("enjoy", "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout and "--video" in result.stdout
    result = sftui("status", "nope", "--train-dir", str(tmp_path))
    assert result.returncode == 2 and "no experiment 'nope'" in _one_line(result)


def test_video_path_is_checked_before_playing(tmp_path):
    (tmp_path / "somefile").write_text("")
    for video, message in [
        (tmp_path / "somefile" / "x.mp4", f"{tmp_path / 'somefile'} is a file, not a folder"),
        (tmp_path / "missing" / "x.mp4", f"{tmp_path / 'missing'}: no such folder"),
        ("/proc/x.mp4", "cannot write in /proc"),
    ]:
        result = cli("enjoy", "no-such-experiment", "--no-render", "-n", "1", "--video", str(video))
        assert result.returncode == 2 and message in _one_line(result), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["somefile"]


def test_an_os_error_while_playing_is_one_line(tmp_path, monkeypatch, capsys):
    import sys

    import sftui.watch
    from sftui.cli import main

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "cfg.json").write_text("{}")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "v.mp4"))

    monkeypatch.setattr(sftui.watch, "enjoy", disk_full)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # typer installs its own
    monkeypatch.setattr(sys, "argv", ["sftui", "enjoy", str(tmp_path / "run"), "--no-render",
                                      "--video", str(tmp_path / "v.mp4")])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"sftui: enjoy stopped: {tmp_path / 'v.mp4'}: No space left on device\n"


@pytest.mark.parametrize("summary", ["garbage", "[1, 2]", '{"state": "finished"}', '{"experiment": "x", "fps": 3}'])
def test_status_of_an_unreadable_summary_is_one_line(tmp_path, summary):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "cfg.json").write_text("{}")
    (folder / "summary.json").write_text(summary)
    result = cli("status", "x", "--train-dir", str(tmp_path))
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert result.stdout.startswith("x: ") and result.stdout.count("\n") == 1 and "--json" in result.stdout
    result = cli("status", "x", "--train-dir", str(tmp_path), "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["state"], result.stderr
    result = cli("ls", "--train-dir", str(tmp_path))
    assert result.returncode == 0 and "x " in result.stdout and not result.stderr, result.stderr


def test_ls_of_a_file_is_refused_and_of_a_missing_folder_is_empty(tmp_path):
    (tmp_path / "file").write_text("")
    result = cli("ls", "--train-dir", str(tmp_path / "file"))
    assert result.returncode == 2 and f"{tmp_path / 'file'}: not a folder" in _one_line(result)
    result = cli("ls", "--train-dir", str(tmp_path / "missing"))
    assert result.returncode == 0 and result.stdout == f"no experiments in {tmp_path / 'missing'}\n"
    assert not (tmp_path / "missing").exists()


def test_sweep_run_on_a_folder_says_it_is_a_folder(tmp_path):
    result = cli("sweep", "run", str(tmp_path), "--train-dir", str(tmp_path / "td"))
    assert result.returncode == 2 and f"{tmp_path} is a folder, not a sweep file" in _one_line(result)
    assert not (tmp_path / "td").exists()
