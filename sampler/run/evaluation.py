"""Evaluation during training (`run.eval_every_env_steps`): when it is due, save each policy, play the checkpoints
in the run's evaluation process, and take the mean returns into the status, TensorBoard and best.pt.

`Evaluator` is owned by the Supervisor. One evaluation runs at a time: a mark passed while one is still playing is
skipped, so a slow evaluation never queues up behind training. A run that reaches its budget plays its final
checkpoints too, before it ends (`final`), so that its last eval_return is the policy it leaves behind. The process
(`sampler.play.evaluate`) is started at the first evaluation and again after it died. Each evaluated checkpoint is
hard-linked to `p<k>/.eval.pt` first, so the file played is the file best.pt becomes, even after periodic
checkpoints rotated it away.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import statistics
from pathlib import Path

from sampler.errors import ControlError
from sampler.experiment import checkpoints
from sampler.play.evaluate import EvalSpec, Evaluated, evaluate_main

log = logging.getLogger("sftui")

EVAL_FILE = ".eval.pt"
STOP_WAIT_SEC = 3.0
FINAL_WAIT_SEC = 120.0  # at most this long for the evaluation in flight, then as long again for the final one


class Evaluator:
    def __init__(self, supervisor):
        self.run = supervisor  # its cfg, folder, ctx, board, sinks and save_all
        self.every = supervisor.cfg.run.eval_every_env_steps
        self.due_at = 0  # the first mark: resume_at() sets it once the learners say where the run stands
        self.process = None
        self.conn = None
        self.pending = 0  # policies sent and not answered yet
        self.cut = False  # a stop was asked for during the final evaluation: drop it
        self.sent: dict[int, Path] = {}  # each policy's checkpoint sent last

    @property
    def enabled(self) -> bool:
        return self.every > 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.is_alive() else None

    def resume_at(self, env_frames: int) -> None:
        self.due_at = self._mark_after(env_frames)

    def _mark_after(self, env_frames: int) -> int:
        return (env_frames // self.every + 1) * self.every if self.every else 0

    def due(self, env_frames: int) -> bool:
        """True when a mark is passed and no evaluation is playing; the next mark is then the one after env_frames."""
        if not self.enabled or env_frames < self.due_at:
            return False
        self.due_at = self._mark_after(env_frames)
        if self.pending:
            log.info("evaluation at %s env frames skipped: the last one is still playing", f"{env_frames:,}")
            return False
        self.pending = -1  # saving
        return True

    async def evaluate(self) -> None:
        """Saves every policy and sends their checkpoints to the evaluation process."""
        try:
            paths = await self.run.save_all()
        except (ControlError, RuntimeError) as e:
            log.warning("evaluation skipped: %s", e)
            self.pending = 0
            return
        self._send(paths)

    async def final(self, paths: list[str]) -> None:
        """The run reached its budget and saved `paths`: waits for the evaluation in flight, then plays these."""
        if not self.enabled or not paths or self.cut:  # Ctrl-C during the final saves: nothing more to play
            return
        if not await self._settled():
            log.warning("final evaluation skipped: the last one did not finish in %.0f s", FINAL_WAIT_SEC)
            return
        paths = [p for p in paths if self.sent.get(_policy_of(Path(p))) != Path(p)]  # a mark may have played them
        if not paths:
            return
        log.info("final evaluation: %d episode(s) per policy", self.run.cfg.run.eval_episodes)
        self._send(paths)
        if not await self._settled():
            log.warning("final evaluation dropped: %s", "a stop was asked for" if self.cut
                        else f"it did not finish in {FINAL_WAIT_SEC:.0f} s")

    def cut_short(self) -> None:
        """A second stop request (Ctrl-C again, `sftui stop`) ends a final evaluation early."""
        self.cut = True

    async def _settled(self) -> bool:
        deadline = asyncio.get_running_loop().time() + FINAL_WAIT_SEC
        while self.pending and not self.cut and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        return not self.pending

    def _send(self, paths: list[str]) -> None:
        self._ensure_process()
        self.pending = 0
        for path in map(Path, paths):
            policy = _policy_of(path)
            self.sent[policy] = path
            played = path.parent / EVAL_FILE
            _link(path, played)
            self.conn.send((policy, str(played)))
            self.pending += 1

    def _ensure_process(self) -> None:
        if self.process is not None and self.process.is_alive():
            return
        if self.process is not None:
            self.run.board.event("evaluation", "the evaluation process exited; starting another")
            self._forget()
        cfg = self.run.cfg.run
        spec = EvalSpec(str(self.run.folder), cfg.eval_episodes, cfg.eval_env, cfg.eval_deterministic,
                        (cfg.seed or 0) + 10_000)
        parent, child = self.run.ctx.Pipe(duplex=True)
        self.process = self.run.ctx.Process(target=evaluate_main, args=(child, spec), name="evaluation", daemon=False)
        self.process.start()
        child.close()
        log.info("evaluation process started (pid %d): %d episode(s) in %s every %s env frames", self.process.pid,
                 cfg.eval_episodes, cfg.eval_env or self.run.cfg.env.name, f"{self.every:,}")
        self.conn = parent
        asyncio.get_running_loop().add_reader(parent.fileno(), self._on_message)

    def _forget(self) -> None:
        if self.conn is not None:
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
            self.conn.close()
        self.conn, self.pending = None, 0

    def _on_message(self) -> None:
        try:
            result: Evaluated = self.conn.recv()
        except (EOFError, OSError):  # it died; the next evaluation starts another
            log.warning("the evaluation process exited (%s)", self.process.exitcode)
            self._forget()
            return
        self.pending = max(0, self.pending - 1)
        if result.error:
            log.warning("evaluation of policy %d failed: %s", result.policy, result.error)
            self.run.board.event("evaluation", f"p{result.policy}: {result.error}")
            return
        self._take(result)

    def _take(self, result: Evaluated) -> None:
        mean = statistics.fmean(result.returns)
        status = self.run.board.policies[result.policy].status
        status.eval_return, status.eval_env_frames = round(mean, 3), result.env_frames
        if self.run.sinks.tb is not None:
            self.run.sinks.tb.write_eval(result.policy, mean, result.env_frames)
        log.info("evaluation of policy %d at %s env frames: mean return %.2f over %d episodes (%.1f s, %.1f s CPU)",
                 result.policy, f"{result.env_frames:,}", mean, len(result.returns), result.seconds,
                 result.cpu_seconds)
        if result.env_frames < self.run.cfg.run.save_best_after_env_steps:
            return
        if status.best_return is None or mean > status.best_return + 1e-3:
            status.best_return = round(mean, 3)
            folder = checkpoints.policy_dir(self.run.folder, result.policy)
            _link(folder / EVAL_FILE, folder / "best.pt")
            checkpoints.write_best_record(self.run.folder, result.policy, status.best_return, result.env_frames,
                                          "evaluation")
            self.run.board.event("checkpoint", f"p{result.policy} best.pt: evaluation return {mean:.2f} "
                                               f"at {result.env_frames:,} env frames")

    def stop(self) -> None:
        """Ends the process (the run is stopping): an evaluation still playing is dropped."""
        if self.process is None:
            return
        if self.pending and self.process.is_alive():  # an evaluation still playing is dropped at once
            self.process.kill()
        try:
            self.conn.send(None)
        except (OSError, AttributeError):
            pass
        self.process.join(STOP_WAIT_SEC)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(STOP_WAIT_SEC)
        self._forget()
        for policy in range(self.run.cfg.sampler.num_policies):  # best.pt, where it was one, is a link of its own
            (checkpoints.policy_dir(self.run.folder, policy) / EVAL_FILE).unlink(missing_ok=True)


def _policy_of(checkpoint: Path) -> int:
    return int(checkpoint.parent.name[1:])  # checkpoints/p<k>/ckpt_...


def _link(source: Path, target: Path) -> None:
    """Atomically make `target` the same file as `source` (a hard link; a copy where links are refused)."""
    temporary = target.with_name(target.name + ".tmp")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
    os.replace(temporary, target)
    temporary.unlink(missing_ok=True)  # rename() leaves both names when they already were links of one file
