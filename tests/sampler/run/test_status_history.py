"""status.jsonl stays bounded however long a run goes: the last hour at full resolution, older lines thinned,
each event written once and never lost in the thinning."""

import json

from sampler.run.publish import StatusHistory


def status(i: int, events: list[dict]) -> dict:
    return {"env_frames": i * 1000, "padding": "x" * 900, "events": events}


def test_the_file_stays_under_its_cap_keeps_the_last_lines_whole_and_every_event_once(tmp_path):
    path = tmp_path / "status.jsonl"
    history = StatusHistory(path, keep_full=50, cap_bytes=200_000)
    events = []
    for i in range(5000):  # about 5 MB unthinned
        if i % 7 == 0:
            events = (events + [{"time": float(i), "kind": "k", "message": f"event {i}"}])[-50:]
        history.append(status(i, events))
        assert path.stat().st_size <= 200_000 * 5 // 4 + 1000
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    frames = [line["env_frames"] for line in lines]
    assert frames[-50:] == [i * 1000 for i in range(4950, 5000)]  # the recent lines, every one
    assert frames == sorted(frames) and frames[0] == 0  # the oldest history thinned, not cut
    written = [e["message"] for line in lines for e in line["events"]]
    assert written == [f"event {i}" for i in range(0, 5000, 7)]  # each once, in order, none lost


def test_a_resumed_run_appends_to_the_history_it_finds(tmp_path):
    path = tmp_path / "status.jsonl"
    path.write_text(json.dumps(status(0, [])) + "\n")
    history = StatusHistory(path, keep_full=10, cap_bytes=5_000)
    for i in range(1, 30):
        history.append(status(i, []))
    frames = [json.loads(line)["env_frames"] for line in path.read_text().splitlines()]
    assert frames[0] == 0 and frames[-10:] == [i * 1000 for i in range(20, 30)]
