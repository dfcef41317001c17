"""Graded tests for Exercise 2.x.2: the sweep, its standard error and its plot.

Arithmetic is tested on values whose answers are known by hand; the sweep
itself runs two short episodes on LIBERO under spies, so each row can be
checked against what the simulator actually did in that episode.
"""

from __future__ import annotations

import json
import math

import numpy as np

from vla_ch2 import conventions as C
from vla_ch2.checking.harness import CheckFailed, Context, graded
from vla_ch2.sweep import EPISODE_FIELDS
from vla_ch2.sweep import first_close_step as library_first_close

#: Episodes and policy steps per episode of the sweep test.
SWEEP_EPISODES, SWEEP_STEPS = 2, 10
#: In the sweep test, episode 0 (initial state 0) is scripted: the policy's gripper closes from this
#: policy step on, and the simulator reports the task solved at this many policy steps. Episode 1 runs
#: the model as it is and fails within its few steps, so no row's numbers can be right by a constant.
SCRIPTED_CLOSE, SCRIPTED_SUCCESS = 3, 6

OPEN, CLOSE = -1.0, 1.0


def _actions(gripper) -> list[list[float]]:
    return [[0.01, -0.02, 0.03, 0.0, 0.0, 0.01, float(g)] for g in gripper]


@graded(points=2, name="first_close_step: first step with action[6] > 0.5, None if never")
def first_close(ctx: Context) -> None:
    func = ctx.function("first_close_step")
    cases = [
        ("actions whose gripper closes at step 7 (and opens again at 9)",
         _actions([OPEN] * 7 + [CLOSE, CLOSE, OPEN, CLOSE]), 7),
        ("actions whose gripper never closes", _actions([OPEN] * 30), None),
        ("actions whose gripper closes at the very first step", _actions([CLOSE] + [OPEN] * 5), 0),
        ("actions whose gripper reads 0.5 at steps 1 and 2 (not above 0.5) and 0.6 at step 3",
         _actions([OPEN, 0.5, 0.5, 0.6, OPEN]), 3),
        ("a numpy array whose gripper closes at step 3", np.asarray(_actions([OPEN] * 3 + [CLOSE] * 4)), 3),
        ("no actions at all", [], None),
    ]
    for description, actions, expected in cases:
        got = func(actions)
        if expected is None:
            if got is not None:
                raise CheckFailed(f"first_close_step returned {got!r} for {description}; an episode that never "
                                  "closes has no first close step (None), so it can be counted apart")
        elif isinstance(got, bool) or not isinstance(got, (int, np.integer)) or got != expected:
            raise CheckFailed(f"first_close_step returned {got!r} for {description}")


@graded(points=2, name="standard_error: binomial sqrt(p (1 - p) / n)")
def standard_error_values(ctx: Context) -> None:
    func = ctx.function("standard_error")
    for successes, episodes in ((44, 50), (25, 50), (1, 4), (0, 50), (50, 50), (7, 9)):
        got = func(successes, episodes)
        p = successes / episodes
        try:
            ok = math.isclose(float(got), math.sqrt(p * (1 - p) / episodes), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            raise CheckFailed(f"standard_error({successes}, {episodes}) returned a {type(got).__name__}, "
                              "not a number") from None
        if not ok:
            raise CheckFailed(f"standard_error({successes}, {episodes}) returned {got!r}, which is not the "
                              "binomial standard error of the success rate")


@graded(points=1, name="standard_error: ValueError without episodes")
def standard_error_needs_episodes(ctx: Context) -> None:
    func = ctx.function("standard_error")
    for episodes in (0, -3):
        try:
            got = func(0, episodes)
        except ValueError:
            continue
        except ZeroDivisionError:
            raise CheckFailed(f"standard_error(0, {episodes}) raised ZeroDivisionError; it should raise ValueError "
                              "with a message saying a success rate needs at least one episode") from None
        raise CheckFailed(f"standard_error(0, {episodes}) returned {got!r}; it should raise ValueError, since "
                          "no success rate is defined without episodes")


@graded(points=1, name="success_rate: fraction of rows with success")
def success_rate_values(ctx: Context) -> None:
    func = ctx.function("success_rate")
    rows = lambda flags: [{"seed": i, "success": f, "final_reward": float(f), "steps": 50, "first_close_step": None,
                           "wall_s": 1.0} for i, f in enumerate(flags)]
    for flags in ([True, False, True, True], [False] * 5, [True], [True] * 44 + [False] * 6):
        got = func(rows(flags))
        try:
            ok = math.isclose(float(got), sum(flags) / len(flags), abs_tol=1e-12)
        except (TypeError, ValueError):
            raise CheckFailed(f"success_rate returned a {type(got).__name__}, not a number") from None
        if not ok:
            raise CheckFailed(f"success_rate returned {got!r} for {len(flags)} rows of which {sum(flags)} succeeded")


@graded(points=3, name="run_sweep: two short episodes on LIBERO, one row each", sim=True)
def sweep_rows(ctx: Context) -> None:
    func = ctx.function("run_sweep")
    task, policy, trace = ctx.sim.spies(max_steps=SWEEP_EPISODES * (C.NUM_WAIT_STEPS + SWEEP_STEPS) + 5,
                                        succeed_at={0: SCRIPTED_SUCCESS}, close_at={0: SCRIPTED_CLOSE})
    rows = func(task, policy, episodes=SWEEP_EPISODES, max_steps=SWEEP_STEPS)
    if not isinstance(rows, (list, tuple)) or len(rows) != SWEEP_EPISODES:
        raise CheckFailed(f"run_sweep(task, policy, episodes={SWEEP_EPISODES}, ...) should return a list of "
                          f"{SWEEP_EPISODES} rows, one per episode; got {type(rows).__name__} "
                          f"{'of length ' + str(len(rows)) if hasattr(rows, '__len__') else ''}".strip())
    episodes = trace.episodes()
    resets = [e[0][1] for e in episodes if e[0][0] == "reset"]
    if resets != list(range(SWEEP_EPISODES)):
        raise CheckFailed(f"the sweep started its episodes from initial states {resets}; episode k is seed k "
                          f"(run_episode(..., seed=k)), so expected one episode per seed 0..{SWEEP_EPISODES - 1}")
    for k, (row, events) in enumerate(zip(rows, episodes)):
        if not isinstance(row, dict):
            raise CheckFailed(f"row {k} is a {type(row).__name__}; each row is a dict")
        missing = [f for f in EPISODE_FIELDS if f not in row]
        if missing:
            raise CheckFailed(f"row {k} lacks the field(s) {missing}; each row has {list(EPISODE_FIELDS)}")
        try:
            json.dumps(row)
        except (TypeError, ValueError) as exc:
            raise CheckFailed(f"row {k} cannot be written as JSON ({exc}); use plain Python values") from None
        types = {"seed": int, "success": bool, "steps": int}
        for name, kind in types.items():
            if not isinstance(row[name], kind) or (kind is int and isinstance(row[name], bool)):
                raise CheckFailed(f"row {k}: {name} should be a {kind.__name__}, got {row[name]!r}")
        if row["seed"] != k:
            raise CheckFailed(f"row {k} has seed {row['seed']!r}; rows come in seed order, episode k = seed k")
        steps = [e for e in events if e[0] == "step"][C.NUM_WAIT_STEPS:]
        done_at = next((i for i, e in enumerate(steps) if e[3]), None)
        if done_at is not None and len(steps) > done_at + 1:
            raise CheckFailed(f"episode {k} went on for {len(steps) - done_at - 1} steps after the simulator "
                              f"reported the task done at policy step {done_at}; a sweep episode ends at success, "
                              "as OpenVLA's evaluation does (run_episode's default)")
        if row["steps"] != len(steps):
            raise CheckFailed(f"row {k}: steps={row['steps']} but the episode took {len(steps)} policy steps")
        if row["success"] != (done_at is not None):
            raise CheckFailed(f"row {k}: success={row['success']} does not match whether the episode ended done")
        final = steps[-1][2] if steps else 0.0
        if not isinstance(row["final_reward"], (int, float)) or not math.isclose(row["final_reward"], final):
            raise CheckFailed(f"row {k}: final_reward={row['final_reward']!r} is not the episode's last reward")
        expected_close = library_first_close([[round(a, 4) for a in e[1]] for e in steps])
        if row["first_close_step"] != expected_close or isinstance(row["first_close_step"], bool):
            raise CheckFailed(f"row {k}: first_close_step={row['first_close_step']!r} does not match the actions "
                              "the episode sent (first step with action[6] > 0.5, None if never)")
        wall = row["wall_s"]
        if isinstance(wall, bool) or not isinstance(wall, (int, float)) or not 0 < wall < 3600:
            raise CheckFailed(f"row {k}: wall_s={wall!r} should be the episode's wall-clock time in seconds")


@graded(points=1, name="plot_first_close: writes a PNG histogram")
def plot_is_written(ctx: Context) -> None:
    func = ctx.function("plot_first_close")
    closes = [62, 71, 75, 80, 88, 95, None, None, 1, 2, 0, None, 140]
    rows = [{"seed": i, "success": i < 6, "final_reward": float(i < 6), "steps": 120, "first_close_step": c,
             "wall_s": 1.0} for i, c in enumerate(closes)]
    out = ctx.scratch / "first_close.png"
    func(rows, out)
    if not out.is_file():
        raise CheckFailed("plot_first_close(rows, out_png) wrote nothing at out_png")
    with open(out, "rb") as handle:
        head = handle.read(8)
    if head != b"\x89PNG\r\n\x1a\n" or out.stat().st_size < 1000:
        raise CheckFailed("plot_first_close wrote a file at out_png that is not a PNG image (save with format png)")
