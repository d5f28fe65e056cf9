"""Checkpoints: `checkpoints/p<k>/ckpt_<version>_<env_frames>.pt` and `best.pt`, written atomically.

A checkpoint holds everything needed to resume or to load a policy on its own: the format version,
the env and model config, the spaces, the policy version and frames, the model, optimizer and
normalizer state, and the policy's hyperparameters. It loads with `torch.load(weights_only=True)`.

Every checkpoint also carries a digest of its contents (`digest`), checked on load: bytes changed on disk fail
the check like a truncated file fails to read, and either is set aside so that the one before is used. A
checkpoint holding a non-finite number (diverged weights, a poisoned optimizer state) is never written, and one
found on disk is refused like a corrupt one: resuming from it could only spread the NaNs.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import re
import tempfile
from pathlib import Path

import torch

from sampler.errors import ExperimentError
from sampler.experiment.folders import write_json_atomic

FORMAT_VERSION = 1
DIGEST_KEY = "digest"
_NAME = re.compile(r"ckpt_(\d+)_(\d+)\.pt$")
UNREADABLE_SUFFIX = ".unreadable"


def policy_dir(folder: Path, policy: int) -> Path:
    return folder / "checkpoints" / f"p{policy}"


def list_checkpoints(folder: Path, policy: int) -> list[Path]:
    """Periodic checkpoints of one policy, oldest first."""
    found = []
    for path in policy_dir(folder, policy).glob("ckpt_*.pt"):
        match = _NAME.search(path.name)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), path))
    return [path for *_, path in sorted(found)]


def latest_checkpoint(folder: Path, policy: int) -> Path | None:
    found = list_checkpoints(folder, policy)
    return found[-1] if found else None


def load_latest(folder: Path, policy: int, set_aside: bool = True) -> tuple[Path, dict, list[str]] | None:
    """The newest periodic checkpoint of a policy that loads, and a line for each newer one that did not.

    An unreadable checkpoint (a disk fault, a partial copy, changed bytes, non-finite numbers) costs the frames
    since the one before it, not the run: with `set_aside` it is renamed `<name>.unreadable`, kept for a look but
    out of the rotation. When no periodic checkpoint reads, `best.pt` is the last resort, with a line that says
    so. With nothing readable at all nothing is renamed and the error names the newest.
    """
    found = list_checkpoints(folder, policy)
    best = policy_dir(folder, policy) / "best.pt"
    if best.exists():
        found.insert(0, best)  # tried last, also where every periodic one was set aside before
    unreadable: list[tuple[Path, ExperimentError]] = []
    for path in reversed(found):
        try:
            payload = load(path)
        except ExperimentError as e:
            unreadable.append((path, e))
            continue
        skipped = []
        for bad, error in unreadable:
            if set_aside:
                kept = bad.with_name(bad.name + UNREADABLE_SUFFIX)
                os.replace(bad, kept)
                error = f"{error}; kept as {kept.name}"
            skipped.append(str(error))
        if path == best:
            skipped.append(f"{path}: no periodic checkpoint reads, so this run resumes from best.pt "
                           f"({payload['env_frames']:,} env frames)")
        return path, payload, skipped
    if unreadable:
        raise ExperimentError(f"{unreadable[0][1]}, and no older checkpoint of policy {policy} reads either; "
                              "move them away to start this policy over, or use --restart")
    return None


def save(payload: dict, folder: Path, policy: int, keep: int | None, best: bool = False) -> Path:
    """Write a checkpoint (with its digest), read it back, and only then rotate the older ones out: the last
    checkpoint known to load is never deleted. Raises NonFiniteState before writing anything non-finite."""
    directory = policy_dir(folder, policy)
    directory.mkdir(parents=True, exist_ok=True)
    name = "best.pt" if best else f"ckpt_{payload['version']:09d}_{payload['env_frames']}.pt"
    path = directory / name
    write_atomic(payload, path)
    load(path)  # raises where the bytes on disk are not what was meant (a failing disk, a racing writer)
    if not best and keep is not None:
        for old in list_checkpoints(folder, policy)[:-keep]:
            old.unlink(missing_ok=True)
    return path


BEST_RECORD = "best.json"


def write_best_record(folder: Path, policy: int, value: float | None, env_frames: int, source: str) -> None:
    """What best.pt holds (`source`: the training or the evaluation return), so that a resumed run only replaces
    it with a better one."""
    write_json_atomic(policy_dir(folder, policy) / BEST_RECORD,
                      {"return": value, "env_frames": env_frames, "source": source})


def read_best_return(folder: Path, policy: int) -> float | None:
    """The return best.pt was saved for, where a best.pt and its record exist (else None)."""
    directory = policy_dir(folder, policy)
    if not (directory / "best.pt").exists():
        return None
    try:
        value = json.loads((directory / BEST_RECORD).read_text()).get("return")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


class NonFiniteState(ExperimentError):
    """A state about to be saved holds NaN or an infinity."""


def non_finite(state) -> list[str]:
    """The paths of the floating-point tensors in a (nested) state that hold NaN or an infinity."""
    found = []
    for path, node in _leaves(state, ""):
        if isinstance(node, torch.Tensor) and node.is_floating_point() and not bool(torch.isfinite(node).all()):
            found.append(path)
        elif isinstance(node, float) and not math.isfinite(node) and path.startswith("/learner"):
            found.append(path)
    return found


def write_atomic(payload: dict, path: Path) -> None:
    """Digest, check and torch.save into a temporary file beside `path`, then rename: a reader never sees half a
    file, and a failed write (a full disk) leaves the previous file at `path` as it was."""
    bad = non_finite(payload)
    if bad:
        raise NonFiniteState(f"{path.name}: not written, non-finite values in {', '.join(bad[:3])}"
                             + (f" and {len(bad) - 3} more" if len(bad) > 3 else ""))
    payload = {**payload, DIGEST_KEY: state_digest({k: v for k, v in payload.items() if k != DIGEST_KEY})}
    # Serialized in memory first: torch.save into a file that hits a full disk raises an opaque RuntimeError,
    # while os.write raises the OSError that says what happened.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pt")
        with os.fdopen(fd, "wb") as f:
            _write_all(f, buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise SaveFailed(_disk_error(e, path)) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


class SaveFailed(ExperimentError):
    """A checkpoint could not be written (a full disk, a read-only folder); the previous one is as it was."""


def _write_all(f, data: memoryview) -> None:
    f.write(data)


def _disk_error(error: OSError, path: Path) -> str:
    if error.errno == errno.ENOSPC:
        return f"no space left on device: {path.parent}"
    if error.errno == errno.EDQUOT:
        return f"disk quota exceeded: {path.parent}"
    return f"{path}: {error.strerror or error}"


def load(path: Path) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ExperimentError(f"{path}: no such checkpoint") from None
    except Exception as e:  # noqa: BLE001 - a corrupt file can raise almost anything
        # torch's own message runs to paragraphs about weights_only; the type says enough.
        raise ExperimentError(f"{path}: not a readable checkpoint, corrupt or not one ({type(e).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise ExperimentError(f"{path}: unknown checkpoint format (expected version {FORMAT_VERSION})")
    saved = payload.pop(DIGEST_KEY, None)  # absent in checkpoints written before digests were
    if saved is not None and saved != state_digest(payload):
        raise ExperimentError(f"{path}: contents changed since it was written (digest mismatch), corrupt")
    bad = non_finite(payload)
    if bad:
        raise ExperimentError(f"{path}: holds non-finite values ({', '.join(bad[:3])}), not usable")
    return payload


def check_compatible(payload: dict, path: Path, env_name: str, model_cfg: dict, obs_specs: dict,
                     action_spec: dict) -> None:
    """Refuse a checkpoint made for another env or model, naming what differs."""
    checks = [
        ("env", payload["env"]["name"], env_name),
        ("observation space", payload["obs_specs"], obs_specs),
        ("action space", payload["action_spec"], action_spec),
        ("model", payload["model"], model_cfg),
    ]
    for what, saved, current in checks:
        if saved != current:
            raise ExperimentError(f"{path}: made for a different {what}: {_difference(saved, current)}")


def _difference(saved, current) -> str:
    """What differs, key by key where both are dicts, so that a long model config reads as one short line."""
    if isinstance(saved, dict) and isinstance(current, dict):
        keys = [k for k in {**saved, **current} if saved.get(k) != current.get(k)]
        return ", ".join(f"{k} {saved.get(k, '(unset)')} (now {current.get(k, '(unset)')})" for k in keys)
    return f"{saved} (now {current})"


def _leaves(node, path: str):
    """(path, value) for every tensor, number and string in a nested state, in a fixed order."""
    if isinstance(node, dict):
        for key in sorted(node, key=str):
            yield from _leaves(node[key], f"{path}/{key}")
    elif isinstance(node, list | tuple):
        for i, item in enumerate(node):
            yield from _leaves(item, f"{path}/{i}")
    else:
        yield path, node


def state_digest(state) -> str:
    """A hash of every tensor and number in a (nested) state dict: equal digests mean equal state."""
    digest = hashlib.sha256()
    for path, node in _leaves(state, ""):
        if isinstance(node, torch.Tensor):
            digest.update(path.encode())
            tensor = node.detach().cpu().contiguous()
            if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16: hash its bits
                tensor = tensor.view(torch.int16)
            digest.update(tensor.numpy().tobytes())
        else:
            digest.update(f"{path}={node!r}".encode())
    return digest.hexdigest()[:16]
