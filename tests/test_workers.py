"""Worker processes (sweep, drills, validation: ``env.worker_pool``) end when the process that started them is killed."""

import multiprocessing as mp
import os
import signal
import sys
import time

import pytest


def _worker(jobs, results) -> None:
    results.put(os.getpid())
    time.sleep(60)


def _parent(ready, pid_file) -> None:
    from vla_ch2.env import worker_pool

    with worker_pool(_worker, [], 1) as results:
        with open(pid_file, "w") as handle:
            handle.write(str(results.get()))
        ready.set()
        time.sleep(60)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return any(line.startswith("State:") and "Z" in line for line in handle)
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_ends_when_its_parent_is_killed(tmp_path):
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    pid_file = tmp_path / "worker.pid"
    parent = ctx.Process(target=_parent, args=(ready, str(pid_file)))
    parent.start()
    assert ready.wait(60), "the worker never started"
    worker = int(pid_file.read_text())
    assert not _gone(worker)
    os.kill(parent.pid, signal.SIGKILL)
    parent.join(10)
    deadline = time.time() + 10
    while not _gone(worker) and time.time() < deadline:
        time.sleep(0.1)
    assert _gone(worker), "the worker outlived its killed parent"


def _echo(jobs, results) -> None:
    while (job := jobs.get()) is not None:
        results.put({"error": f"job {job} is bad"} if job == "bad" else {"job": job})


def test_pool_to_jsonl_writes_every_result_and_stops_at_an_error_keeping_what_came_before(tmp_path):
    import json

    from vla_ch2.env import pool_to_jsonl

    out = tmp_path / "rows.jsonl"
    rows = pool_to_jsonl(_echo, [1, 2, 3], 1, out)
    assert sorted(r["job"] for r in rows) == [1, 2, 3]
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows
    with pytest.raises(RuntimeError, match="^a checker failed: job bad is bad"):
        pool_to_jsonl(_echo, [4, "bad", 5], 1, out, name="a checker")
    assert [json.loads(line)["job"] for line in out.read_text().splitlines()] == [*(r["job"] for r in rows), 4]
    assert pool_to_jsonl(_echo, [], 1, out) == []
