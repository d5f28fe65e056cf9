"""What a live run answers on its control socket: pause, resume, save, stop and set, and the learner requests
the population and the opponent pool make through the supervisor.

`RunCommands` is a part of the Supervisor, kept apart because it is the run's outside surface. It uses the
supervisor's state, board, waiters and worker handles.
"""

from __future__ import annotations

import asyncio
import json

from pydantic import ValidationError

from algos import tunables
from sampler.errors import ControlError

COMMAND_TIMEOUT_SEC = 60.0


def check_hyperparameters(cfg, components: tuple[str, ...], args: dict) -> tuple[list[int], dict]:
    """The policies and changes of a `set` command, or a ControlError naming the first thing wrong with it."""
    changes = args.get("hyperparameters") or {}
    allowed = [*tunables.NAMES, "reward_shaping"] if components else list(tunables.NAMES)
    unknown = sorted(set(changes) - set(allowed))
    if not changes or unknown:
        raise ControlError(f"set takes hyperparameters among {', '.join(allowed)}; got {unknown or 'none'}")
    shaping = changes.get("reward_shaping")
    if shaping is not None:
        if not isinstance(shaping, dict) or set(shaping) - set(components) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in shaping.values()):
            raise ControlError(f"reward_shaping takes numbers for components among {', '.join(components)}; "
                               f"got {shaping!r}")
    try:
        appo = {k: v for k, v in changes.items() if k != "reward_shaping"}
        type(cfg.appo).model_validate({**cfg.appo.model_dump(), **appo})
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(["appo", *(str(p) for p in first["loc"])])
        got = f" (got {first['input']!r})" if "input" in first else ""
        raise ControlError(f"{where}: {first['msg'].removeprefix('Value error, ')}{got}") from None
    count = cfg.sampler.num_policies
    if "policy" in args and not (isinstance(args["policy"], int) and 0 <= args["policy"] < count):
        raise ControlError(f"--policy {args['policy']}: the run has policies 0..{count - 1}")
    return ([args["policy"]] if "policy" in args else list(range(count))), changes


class RunCommands:
    async def handle_command(self, cmd: str, args: dict):
        if self.state not in ("running", "paused") and cmd != "stop":
            raise ControlError(f"the run is {self.state}")
        if cmd == "pause":
            return await self.pause()
        if cmd == "resume":
            return self.resume()
        if cmd == "save":
            return await self.save_all()
        if cmd == "stop":
            self.request_stop("stopped", "stop command")
            return {"state": "stopping"}
        if cmd == "set":
            return self.set_hyperparameters(args)
        raise ControlError(f"unknown command {cmd!r}")

    async def pause(self) -> dict:
        if self.state == "paused":
            return {"state": "paused"}
        waiter = asyncio.get_running_loop().create_future()
        self._waiters["paused"] = waiter
        for handle in self._alive():
            handle.paused = False
            handle.send("pause")
        try:
            await asyncio.wait_for(waiter, COMMAND_TIMEOUT_SEC)
        except TimeoutError:
            busy = [h.name for h in self._alive() if not h.paused]
            raise ControlError(f"workers did not become idle: {', '.join(busy)}") from None
        finally:
            self._waiters.pop("paused", None)
        self._set_state("paused")
        return {"state": "paused", "env_frames": self.board.env_frames}

    def resume(self) -> dict:
        if self.state != "paused":
            return {"state": self.state}
        for handle in self._alive():
            handle.paused = False
            handle.send("resume")
        self._set_state("running")
        return {"state": "running"}

    async def save_all(self, best_policy: int | None = None) -> list[str]:
        futures = []
        for handle in self._alive():
            if handle.kind != "learner" or (best_policy is not None and handle.policy != best_policy):
                continue
            futures.append(self._reply_future("saved"))
            handle.send("save", env_frames=self.board.env_frames, elapsed_sec=self.elapsed_sec(),
                        best=best_policy is not None, request=self._request_ids)
        try:
            return list(await asyncio.wait_for(asyncio.gather(*futures), COMMAND_TIMEOUT_SEC))
        except TimeoutError:
            raise ControlError("learners did not save in time") from None

    def set_hyperparameters(self, args: dict) -> dict:
        policies, changes = check_hyperparameters(self.cfg, self.buffers.reward_components, args)
        for handle in self._alive():
            if handle.kind == "learner" and handle.policy in policies:
                handle.send("set", hyperparameters=changes, source="set")
        self.board.event("set", f"policies {policies}: {json.dumps(changes)}")
        return {"policies": policies, "hyperparameters": changes}

    async def ask_learner(self, policy: int, cmd: str, reply: str, timeout: float, **args) -> dict:
        """Send a command to a policy's learner and wait for its reply of kind `reply`."""
        handle = next((h for h in self._alive() if h.kind == "learner" and h.policy == policy), None)
        if handle is None:
            raise RuntimeError(f"learner_p{policy} is not running")
        future = self._reply_future(reply)
        handle.send(cmd, request=self._request_ids, **args)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RuntimeError(f"learner_p{policy} did not answer {cmd} in {timeout:.0f} s") from None

    def _reply_future(self, reply: str) -> asyncio.Future:
        """A future for the reply of kind `reply` to the next request; the request's id is `self._request_ids`."""
        self._request_ids += 1
        future = asyncio.get_running_loop().create_future()
        self._waiters[f"{reply}-{self._request_ids}"] = future
        return future
