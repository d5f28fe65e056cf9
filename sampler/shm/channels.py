"""Index-only channels between workers that a killed rollout worker cannot break.

A multiprocessing queue serializes writers with a shared lock; a rollout worker killed while
holding it would block every other writer forever. Here each message goes out in a single write
of at most PIPE_BUF bytes, which the kernel keeps whole, so writers need no lock and a writer's
death can neither corrupt nor block the channel.

- `MessageChannel` carries small pickled messages (requests, trajectory indices). Its readers are
  inference workers and learners; several readers share an `OwnedLock`, which the supervisor frees for a
  reader killed while holding it.
- `ReplyChannel` carries fixed-size frames to one rollout worker. Reads take whole frames only, so
  a restarted worker reading the channel its dead predecessor read never sees half a frame.
"""

from __future__ import annotations

import os
import pickle
import select
import struct

PIPE_BUF = getattr(select, "PIPE_BUF", 4096)
_HEADER = struct.Struct("!i")  # the framing multiprocessing.Connection.recv_bytes reads
INDICES_PER_MESSAGE = 256  # trajectory indices a list sent in one message may hold: it must fit PIPE_BUF


class OwnedLock:
    """A multiprocessing lock that records which process holds it, so that the supervisor can free it for a
    process killed while holding it: nothing else would, and every other process would wait on it forever."""

    def __init__(self, ctx):
        self._lock = ctx.Lock()
        self._holder = ctx.Value("q", 0, lock=False)  # the holder's pid, 0 when free

    def __enter__(self) -> OwnedLock:
        self._lock.acquire()
        self._holder.value = os.getpid()
        return self

    def __exit__(self, *exc) -> None:
        self._holder.value = 0
        self._lock.release()

    def free_for_dead(self, pid: int, patience: float = 1.0) -> bool:
        """After process `pid` died: releases the lock if it died holding it, and says so. A holder is recorded
        just after its acquire, so a lock that stays taken for `patience` seconds with no holder recorded was
        taken by `pid` in that instant; one recorded as another process's is left alone."""
        if self._holder.value == pid:
            self._holder.value = 0
            self._lock.release()
            return True
        if self._holder.value != 0:
            return False
        if self._lock.acquire(timeout=patience):
            self._lock.release()
            return False
        if self._holder.value != 0:  # a live process took it meanwhile
            return False
        self._lock.release()
        return True


class MessageChannel:
    def __init__(self, ctx, shared_readers: bool = False):
        self.reader, self._writer = ctx.Pipe(duplex=False)
        self._read_lock = OwnedLock(ctx) if shared_readers else None

    def put(self, message) -> None:
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        frame = _HEADER.pack(len(payload)) + payload
        if len(frame) > PIPE_BUF:
            raise ValueError(f"channel message of {len(frame)} bytes exceeds PIPE_BUF ({PIPE_BUF})")
        os.write(self._writer.fileno(), frame)

    def poll(self) -> bool:
        return self.reader.poll()

    def get(self):
        if self._read_lock is None:
            return pickle.loads(self.reader.recv_bytes())
        with self._read_lock:
            return pickle.loads(self.reader.recv_bytes())

    def free_for_dead(self, pid: int) -> bool:
        """After a reader died: the read lock, if it died holding it (OwnedLock.free_for_dead)."""
        return self._read_lock is not None and self._read_lock.free_for_dead(pid)


FREE = 0  # a learner freed some of this worker's trajectory buffers
ACTIONS = 1  # an inference worker wrote actions for a split


def tagged(incarnation: int, step: int) -> int:
    """An ACTIONS frame's second field: the rollout worker's incarnation and the step the actions are for, so a
    late duplicate (an inference worker restarted, a request asked again) is told from the awaited answer."""
    return (incarnation << 16) | (int(step) & 0xFFFF)


def untagged(field: int) -> tuple[int, int]:
    """(incarnation, step) of an ACTIONS frame's second field."""
    return field >> 16, field & 0xFFFF
_REPLY = struct.Struct("!iiii")  # kind, incarnation, split, policy
_MAX_FRAMES_PER_READ = PIPE_BUF // _REPLY.size


class ReplyChannel:
    def __init__(self, ctx):
        self.reader, self._writer = ctx.Pipe(duplex=False)

    def put(self, kind: int, incarnation: int = 0, split: int = 0, policy: int = 0) -> None:
        os.write(self._writer.fileno(), _REPLY.pack(kind, incarnation, split, policy))

    def put_many(self, frames: list[tuple[int, int, int, int]]) -> None:
        """Several frames in as few writes as PIPE_BUF allows (each write stays whole)."""
        for start in range(0, len(frames), _MAX_FRAMES_PER_READ):
            chunk = frames[start:start + _MAX_FRAMES_PER_READ]
            os.write(self._writer.fileno(), b"".join(_REPLY.pack(*frame) for frame in chunk))

    def poll(self) -> bool:
        return self.reader.poll()

    def get_all(self) -> list[tuple[int, int, int, int]]:
        """Every frame waiting now (at least one: call after poll)."""
        data = os.read(self.reader.fileno(), _REPLY.size * _MAX_FRAMES_PER_READ)
        return [_REPLY.unpack_from(data, offset) for offset in range(0, len(data), _REPLY.size)]
