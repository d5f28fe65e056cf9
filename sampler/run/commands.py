"""What a live run answers on its control socket: pause, resume, save, stop and set, and the learner requests
the population and the opponent pool make through the supervisor.

`RunCommands` is a part of the Supervisor, kept apart because it is the run's outside surface. It uses the
supervisor's state, board, pending replies and worker handles.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable

from pydantic import ValidationError

from algos import tunables
from sampler.errors import ControlError
from sampler.experiment import checkpoints
from sampler.run.messages import Command, Pause, Reply, Resume, Save, SetHyperparameters

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
        """A control-socket command (the protocol's names), answered with a JSON-ready result."""
        handlers = {"pause": self.pause, "resume": self.resume, "save": self.save_all, "stop": self.stop,
                    "set": lambda: self.set_hyperparameters(args)}
        if cmd not in handlers:
            raise ControlError(f"unknown command {cmd!r}")
        if self.state not in ("running", "paused") and cmd != "stop":
            raise ControlError(f"the run is {self.state}")
        result = handlers[cmd]()
        return await result if inspect.isawaitable(result) else result

    def stop(self) -> dict:
        self.request_stop("stopped", "stop command")
        return {"state": "stopping"}

    async def pause(self) -> dict:
        if self.state == "paused":
            return {"state": "paused"}
        self._all_paused = asyncio.get_running_loop().create_future()
        for handle in self._alive():
            handle.paused = False
            handle.send(Pause())
        try:
            await asyncio.wait_for(self._all_paused, COMMAND_TIMEOUT_SEC)
        except TimeoutError:
            busy = [h.name for h in self._alive() if not h.paused]
            raise ControlError(f"workers did not become idle: {', '.join(busy)}") from None
        finally:
            self._all_paused = None
        self._set_state("paused")
        return {"state": "paused", "env_frames": self.board.env_frames}

    def resume(self) -> dict:
        if self.state != "paused":
            return {"state": self.state}
        for handle in self._alive():
            handle.paused = False
            handle.send(Resume())
        self._set_state("running")
        return {"state": "running"}

    async def save_all(self, best_policy: int | None = None) -> list[str]:
        futures = []
        for handle in self._alive():
            if handle.kind != "learner" or (best_policy is not None and handle.policy != best_policy):
                continue
            request, future = self._request()
            futures.append(future)
            handle.send(Save(request=request, env_frames=self.board.env_frames, elapsed_sec=self.elapsed_sec(),
                             best=best_policy is not None))
        try:
            replies = await asyncio.wait_for(asyncio.gather(*futures), COMMAND_TIMEOUT_SEC)
        except TimeoutError:
            raise ControlError("learners did not save in time") from None
        paths = [saved.path for saved in replies if saved.path]
        errors = list(dict.fromkeys(saved.error for saved in replies if saved.error))
        self.board.warning = f"checkpoints not saved: {'; '.join(errors)}" if errors else None
        if errors:
            raise ControlError("; ".join(errors))
        if best_policy is not None and paths:
            checkpoints.write_best_record(self.folder, best_policy, self.board.policies[best_policy].status.best_return,
                                          self.board.env_frames, "training")
        return paths

    def set_hyperparameters(self, args: dict) -> dict:
        policies, changes = check_hyperparameters(self.cfg, self.env.reward_components, args)
        for handle in self._alive():
            if handle.kind == "learner" and handle.policy in policies:
                handle.send(SetHyperparameters(hyperparameters=changes, source="set"))
        self.board.event("set", f"policies {policies}: {json.dumps(changes)}")
        return {"policies": policies, "hyperparameters": changes}

    async def ask_learner(self, policy: int, ask: Callable[..., Command], timeout: float) -> Reply:
        """Sends a policy's learner the command `ask(request=...)` makes and waits for its reply."""
        handle = next((h for h in self._alive() if h.kind == "learner" and h.policy == policy), None)
        if handle is None:
            raise RuntimeError(f"learner_p{policy} is not running")
        request, future = self._request()
        command = ask(request=request)
        handle.send(command)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RuntimeError(f"learner_p{policy} did not answer {type(command).__name__} in {timeout:.0f} s"
                               ) from None

    def _request(self) -> tuple[int, asyncio.Future]:
        """A new request id, and the future its reply resolves (the supervisor matches replies by id)."""
        self._request_ids += 1
        future = asyncio.get_running_loop().create_future()
        self._replies[self._request_ids] = future
        return self._request_ids, future
