"""Pilot test of the Enjoy screen with a fake frame source: frames, the step, episodes and the keys."""

from __future__ import annotations

import numpy as np

from sftui.app.app import SftuiApp
from sftui.app.enjoy import EnjoyScreen
from sftui.app.frames import FrameView
from sftui.app.sources import FakeSource
from tests.sftui.test_dashboard import settle, sync, tmp_train_dir


class FakePlayer:
    def __init__(self, folder, policy, checkpoint, agent=0, has_frames=True, agents=1):
        self.checkpoint, self.agent = checkpoint, agent
        self.sent: list[tuple] = []
        self.events: list[tuple] = [("ready", {"checkpoint": "/x/ckpt_000000009_4096.pt", "version": 9,
                                               "env_frames": 4096, "fps": 35.0, "has_frames": has_frames,
                                               "agents": agents})]
        self.closed = False

    def push(self, *event) -> None:
        self.events.append(event)

    def send(self, command, arg=None) -> None:
        self.sent.append((command, arg))

    def poll(self) -> list[tuple]:
        out, self.events = self.events, []
        return out

    def close(self) -> None:
        self.closed = True


@sync
async def test_enjoy_screen_draws_frames_steps_and_episodes_and_obeys_its_keys(tmp_path):
    players = []

    def factory(folder, policy, checkpoint, agent):
        players.append(FakePlayer(folder, policy, checkpoint, agent, agents=2))
        return players[-1]

    app = SftuiApp(FakeSource(), "exp", tmp_train_dir())  # over a dashboard: no launcher form to build
    async with app.run_test(size=(160, 48)) as pilot:
        app.push_screen(EnjoyScreen(tmp_path, "doomy", source_factory=factory))
        await settle(pilot)
        screen = app.screen
        player = players[-1]
        frame = np.zeros((72, 128, 3), np.uint8)
        frame[:, :64] = (248, 0, 0)
        player.push("step", frame, {"episode": 1, "step": 7, "return": -12.0, "action": 2, "value": 33.5, "obs": None})
        player.push("episode", {"index": 1, "return": 95.0, "length": 3})
        await settle(pilot)

        view = screen.query_one("#frame", FrameView)
        assert view.frame is frame and view._strips
        line = view.render_line(view.size.height // 2)
        assert any(seg.style and seg.style.color and seg.style.color.triplet == (248, 0, 0) for seg in line)
        now = str(screen.query_one("#now").render())
        assert "episode 1  step 7" in now and "return -12.00" in now and "action 2" in now and "value 33.50" in now
        assert "version 9" in now
        table = screen.query_one("#episodes")
        assert table.row_count == 1 and table.get_row_at(0) == ["1", "95.00", "3"]

        await pilot.press("space")
        await pilot.press("n")
        await pilot.press("r")
        await pilot.press("plus")
        await pilot.press("minus", "minus")
        await settle(pilot)
        assert player.sent == [("pause", True), ("next", None), ("record", None), ("speed", 2.0), ("speed", 1.0),
                               ("speed", 0.5)]
        assert "paused  speed 0.5x" in str(screen.query_one("#now").render())

        # Two seats: the agent picker shows, and picking agent 1 restarts the player watching it.
        picker = screen.query_one("#agent")
        assert picker.display
        picker.value = 1
        await settle(pilot)
        assert len(players) == 2 and players[-1].agent == 1 and player.closed
        player = players[-1]

        player.push("error", "the enjoy process ended (exit code 1): boom")
        await settle(pilot)
        assert "boom" in str(screen.query_one("#message").render())

        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, EnjoyScreen) and player.closed


@sync
async def test_a_vector_env_gets_a_plot_of_observation_and_action(tmp_path):
    players = []
    app = SftuiApp(FakeSource(), "exp", tmp_train_dir())  # over a dashboard: no launcher form to build
    async with app.run_test(size=(120, 40)) as pilot:
        app.push_screen(EnjoyScreen(tmp_path, "cartpole",
                                    source_factory=lambda *a: players.append(FakePlayer(*a, has_frames=False))
                                    or players[-1]))
        await settle(pilot)
        player = players[-1]
        for t in range(5):
            player.push("step", None, {"episode": 1, "step": t, "return": float(t), "action": t % 2, "value": 1.0,
                                       "obs": [0.1 * t, -0.2, 0.3, 0.01 * t]})
        await settle(pilot)
        screen = app.screen
        assert not screen.query_one("#frame").display and screen.query_one("#plot").display
        plot = str(screen.query_one("#plot").render())
        assert "obs[ 0]" in plot and "obs[ 3]" in plot and "action" in plot
