"""No completed trajectory block is lost or trained twice when its rollout worker dies while handing it over.

The worker marks a block LEARNER and addresses it to its learners, then sends its index. Dead between the two,
its successor sends again what no addressed learner took; a learner drops a copy of one it holds already, or
one it released since. A learner or inference worker killed holding a lock it shares does not leave it held."""

from __future__ import annotations

import multiprocessing
import os

import numpy as np

from algos.spaces import ActionSpec, ObsSpec
from sampler.shm.buffers import (
    FREE,
    LEARNER,
    WORKER,
    BufferLayout,
    TrajectoryBuffers,
    reclaim,
    release,
    take,
    undelivered,
)
from sampler.shm.channels import OwnedLock

LAYOUT = BufferLayout(num_workers=1, slots_per_worker=2, buffers_per_slot=2, rollout=4)


def _views():
    buffers = TrajectoryBuffers(LAYOUT, {"obs": ObsSpec(shape=(2,), dtype="float32")}, ActionSpec(kind="discrete", n=2),
                                num_policies=2)
    return buffers.numpy_views()


def _hand_over(np_, trajectories, policies):
    np_.consumers[trajectories] = len(policies)
    np_.addressed[trajectories] = sum(1 << p for p in policies)
    np_.state[trajectories] = LEARNER


def test_a_block_marked_but_never_sent_is_sent_again_by_the_restarted_worker():
    np_ = _views()
    mine = np.arange(4)
    np_.state[2] = WORKER  # a partial block: not handed over, not sent again
    _hand_over(np_, [0, 1], [0])  # ... and the worker died before sending [0, 1]
    assert undelivered(np_, mine) == {0: [0, 1]}
    assert take(np_, 1, [0, 1]) == [0, 1]  # the learner trains them once they come
    assert undelivered(np_, mine) == {}


def test_a_restarted_worker_frees_and_counts_the_partial_blocks_but_leaves_those_handed_over():
    np_ = _views()
    mine = np.arange(4)
    np_.state[[2, 3]] = WORKER  # two partial blocks, being filled when the worker died
    _hand_over(np_, [0, 1], [0])
    assert reclaim(np_, mine) == 2
    assert np_.state[[2, 3]].tolist() == [FREE, FREE] and np_.state[[0, 1]].tolist() == [LEARNER, LEARNER]
    assert reclaim(np_, mine) == 0  # none left to count


def test_a_copy_of_a_block_that_was_in_flight_is_dropped_by_the_learner():
    np_ = _views()
    _hand_over(np_, [0, 1], [0])  # sent, still in the learner's queue when the worker died
    assert undelivered(np_, np.arange(4)) == {0: [0, 1]}  # so its successor sends it again
    assert take(np_, 1, [0, 1]) == [0, 1]
    assert take(np_, 1, [0, 1]) == []  # the copy: held already
    np_.held[[0, 1]] &= ~1
    np_.addressed[[0, 1]] &= ~1
    release(np_, LAYOUT, [0, 1])
    assert take(np_, 1, [0, 1]) == []  # or released since


def test_a_block_for_two_learners_goes_again_only_to_the_one_that_did_not_take_it():
    np_ = _views()
    _hand_over(np_, [3], [0, 1])
    assert take(np_, 1, [3]) == [3]
    np_.held[3] &= ~1  # learner 0 trained on it and released it; learner 1 still needs it
    np_.addressed[3] &= ~1
    release(np_, LAYOUT, [3])
    assert undelivered(np_, np.arange(4)) == {1: [3]}
    assert take(np_, 1, [3]) == []  # a late copy to learner 0 is not trained twice
    assert take(np_, 2, [3]) == [3]


def _hold_and_die(lock) -> None:
    lock.__enter__()
    os._exit(9)  # killed holding it


def _take_then_die_before_recording(lock) -> None:
    lock._lock.acquire()  # the instant between the acquire and recording the holder
    os._exit(9)


def test_a_lock_whose_holder_was_killed_is_freed_and_one_held_by_a_live_process_is_not():
    ctx = multiprocessing.get_context("fork")
    lock = OwnedLock(ctx)
    assert not lock.free_for_dead(12345, patience=0.1)  # free: left as it was
    with lock:
        assert not lock.free_for_dead(12345, patience=0.1)  # held by this live process: left alone
    for die in (_hold_and_die, _take_then_die_before_recording):
        dead = ctx.Process(target=die, args=(lock,))
        dead.start()
        dead.join()
        assert not lock._lock.acquire(timeout=0.1)  # stuck: every sibling would wait here forever
        assert lock.free_for_dead(dead.pid, patience=0.1)
        with lock:
            pass
