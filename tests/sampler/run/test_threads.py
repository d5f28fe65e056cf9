"""The learner's thread tuner: each count measured in turn, the fastest kept, fewer threads on a near tie."""

from __future__ import annotations

from sampler.config.build import build_config
from sampler.run.threads import ThreadTuner, thread_choices


def drive(tuner: ThreadTuner, rate_of: dict[int, float], seconds: float, start: float = 0.0) -> list[tuple]:
    """One step a second at the rate of the current count; the switches asked for, with their times."""
    switches = []
    for t in range(int(start), int(start + seconds)):
        threads = tuner.record(int(rate_of[tuner.current]), float(t))
        if threads is not None:
            switches.append((t, threads))
    return switches


def test_the_faster_count_is_kept_after_one_window_each_and_tried_again_later():
    tuner = ThreadTuner([1, 2], start=1, window_sec=10, recheck_sec=100)
    rates = {1: 1600.0, 2: 1890.0}
    # warm-up 0..10, 1 thread 10..20, 2 threads 20..30: then settled on 2
    assert drive(tuner, rates, 40) == [(20, 2)]
    assert tuner.phase == "settled" and tuner.current == 2
    assert tuner.rates == {1: 1600.0, 2: 1890.0}
    assert tuner.describe() == "2 torch thread(s) (trained frames/s: 1,600 with 1, 1,890 with 2)"
    # the recheck 100 s later tries 1 again; the load changed and 1 thread now wins
    rates.update({1: 3300.0, 2: 2700.0})
    switches = drive(tuner, rates, 120, start=40)
    assert switches[0][1] == 1 and tuner.current == 1 and tuner.rates[1] == 3300.0


def test_more_threads_must_beat_fewer_by_the_margin():
    tuner = ThreadTuner([1, 2, 4], start=4, window_sec=5, min_gain=0.05)
    drive(tuner, {1: 1000.0, 2: 1040.0, 4: 1100.0}, 30)
    assert tuner.phase == "settled"
    assert tuner.current == 4  # 4 beats 1 by 10%; 2 does not beat 1 by 5%
    tuner = ThreadTuner([1, 2], start=2, window_sec=5, min_gain=0.05)
    drive(tuner, {1: 1000.0, 2: 1030.0}, 30)
    assert tuner.current == 1  # a near tie goes to the count that leaves cores to the rollout workers


def test_only_a_single_cpu_learner_with_the_auto_count_is_tuned():
    base = {"env": {"name": "gym_CartPole-v1"}, "run": {"device": "cpu"}}
    assert thread_choices(build_config(base), "cpu", cores=2) == [1, 2]
    assert thread_choices(build_config(base), "cuda", cores=2) == []  # a GPU learner keeps 1 thread
    assert thread_choices(build_config(base), "cpu", cores=16) == [1, 2, 4, 8, 16]
    assert thread_choices(build_config(base), "cpu", cores=6) == [1, 2, 4, 6]
    assert thread_choices(build_config(base), "cpu", cores=1) == []
    assert thread_choices(build_config({**base, "run": {"device": "cpu", "learner_threads": 2}}), "cpu", cores=2) == []
    assert thread_choices(build_config({**base, "sampler": {"num_policies": 2}}), "cpu", cores=2) == []
    batched = build_config({**base, "sampler": {"batched_sampling": True}})
    assert thread_choices(batched, "cpu", cores=2) == []  # every core, fixed
