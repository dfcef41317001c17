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
