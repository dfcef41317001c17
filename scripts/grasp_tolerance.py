"""How precisely must each object be grasped? The scripted expert, aimed off on purpose.

The policy sees one 96-pixel camera image (about 0.9 cm per pixel at the
objects), so a grasp it aims from pixels is off by some millimetres. This
script measures what such an error costs per object: the expert
(:class:`vla_ch2.factory.expert.ScriptedExpert`) closes ``r`` metres sideways
from its usual grasp point, in evenly spaced directions, or ``h`` metres above
it (``--heights``: it closes that much higher, or lower for a negative
height), and may not try again
(``max_attempts=0``). Success then means the misaimed grasp still held.
``--early`` instead makes it close that much earlier on its way down, aimed
right, and go on down while the fingers close (``early_close``): what the
expert teaches a learner that closes too high to do.

    python scripts/grasp_tolerance.py --radii 0.005 0.01 0.02 --directions 6 --workers 2 \\
        --out docs/results/v2/grasp_tolerance.jsonl
    python scripts/grasp_tolerance.py --radii 0 --heights 0.005 0.01 0.02 --directions 4 --workers 2 \\
        --out docs/results/v2/grasp_tolerance.jsonl
    python scripts/grasp_tolerance.py --radii 0 --early 0.01 0.02 0.03 --directions 4 --workers 2 \\
        --out docs/results/v2/grasp_tolerance.jsonl

Errors are counted from the expert's usual aim and closing height at the
time (each row's ``grasp_xy`` and ``grasp_dz``, from
:data:`vla_ch2.factory.expert.GRASP_XY` and ``GRASP_DZ``; rows written
before round 13 moved the flat boxes' ``GRASP_DZ``, round 13's own
``grasp_heights.jsonl`` included, have no ``grasp_dz``: it was 0 for every
object then but the salad dressing, -1 cm). Evenly spaced
directions put each on a layout of its own, so a hard layout can pass for a
bad direction; ``--angles 0 180 --layouts 3`` instead tries each direction
on the same three layouts (where along world x the grasp still holds):

    python scripts/grasp_tolerance.py --tasks 1 --radii 0 0.005 0.01 0.015 0.02 0.03 0.04 0.05 \\
        --angles 0 180 --layouts 3 --out docs/results/v2/round4/grasp_window_task1.jsonl

Layouts are fresh (seeds ``LAYOUT_BASE`` + 1000 * task + k, used by nothing
else); resumable: episodes already in ``--out`` are skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from results_tables import grasp_tolerance_table  # noqa: E402
from vla_ch2.env import pool_to_jsonl  # noqa: E402

#: Layout seeds of these episodes (demonstrations 100000+, validation 200000+, DAgger 300000 to 399999).
LAYOUT_BASE = 400_000
MAX_STEPS = 280


def _worker(jobs, results, suite: str) -> None:
    from vla_ch2 import conventions as C
    from vla_ch2.env import LiberoTask, quiet_robosuite
    from vla_ch2.factory.expert import GRASP_XY, ExpertConfig, ScriptedExpert

    quiet_robosuite()
    tasks = {}
    try:
        while (job := jobs.get()) is not None:
            task_id, radius, height, early, k, angle_deg = job
            if task_id not in tasks:
                tasks[task_id] = LiberoTask(suite, task_id)
            task, layout_seed = tasks[task_id], LAYOUT_BASE + 1000 * task_id + k
            target = task.env.env.obj_of_interest[0]
            obs = task.reset(layout_seed=layout_seed)
            for _ in range(C.NUM_WAIT_STEPS):
                obs, _, _, _ = task.step(C.WAIT_ACTION)
            angle = math.radians(angle_deg)
            miss = (radius * math.cos(angle), radius * math.sin(angle), height)
            expert = ScriptedExpert(target, config=ExpertConfig(max_attempts=0), miss=miss, early_close=early)
            done, steps = False, 0
            while not done and steps < MAX_STEPS:
                obs, _, done, _ = task.step(expert.act(obs))
                steps += 1
            results.put({"task": task_id, "radius": radius, "height": height, "early": early, "k": k,
                         "angle_deg": angle_deg, "layout_seed": layout_seed,
                         "success": bool(done), "steps": steps, "object": target,
                         # where the hand was, from the object's origin (metres), when it began to close
                         "close_hand_minus_object": None if expert._grasp is None
                         else [round(float(v), 4) for v in expert._grasp[0] - expert._grasp[1]],
                         # the usual aim these errors are counted from (it has moved: GRASP_XY)
                         "grasp_xy": list(GRASP_XY.get(target.rsplit("_", 1)[0], (0.0, 0.0))),
                         # and the usual closing height they are counted from (GRASP_DZ; it has moved too)
                         "grasp_dz": expert._dz()})
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which stops with the message
        results.put({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        for task in tasks.values():
            task.close()


def main(argv: list[str] | None = None) -> int:
    from vla_ch2.conventions import N_TASKS
    from vla_ch2.sweep import parse_tasks

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="libero_object")
    parser.add_argument("--tasks", default="all")
    parser.add_argument("--radii", type=float, nargs="+", default=[0.005, 0.01, 0.02], help="aim errors, metres")
    parser.add_argument("--heights", type=float, nargs="+", default=[0.0],
                        help="closing this much higher, metres (negative: lower, down to -0.02)")
    parser.add_argument("--early", type=float, nargs="+", default=[0.0],
                        help="closing this much earlier on the way down, then going on down, metres")
    parser.add_argument("--directions", type=int, default=6, help="evenly spaced directions (one layout each)")
    parser.add_argument("--angles", type=float, nargs="+", default=None,
                        help="these directions instead (degrees from world +x towards +y), each on --layouts layouts")
    parser.add_argument("--layouts", type=int, default=3, help="layouts per direction given with --angles")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.directions < 1 or args.layouts < 1 or any(not 0 <= r < 0.1 for r in args.radii + args.early):
        parser.error("--directions and --layouts must be at least 1 and every --radii and --early value "
                     "in [0, 0.1) metres")
    if any(not -0.02 <= h < 0.1 for h in args.heights):
        parser.error("every --heights value must be in [-0.02, 0.1) metres (below 0 the expert closes lower than "
                     "its usual height; more than 2 cm lower drives the fingers into the table)")
    tasks = parse_tasks(args.tasks, N_TASKS[args.suite])
    rows = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.is_file() else []
    done = {(r["task"], r["radius"], r["height"], r["early"], r["k"], r["angle_deg"]) for r in rows}
    # Evenly spaced directions pair direction k with layout k; --angles crosses every direction with every layout,
    # so that a hard layout cannot pass for a bad direction.
    aims = ([(k, round(360.0 * k / args.directions, 1)) for k in range(args.directions)] if args.angles is None
            else [(k, float(a)) for a in args.angles for k in range(args.layouts)])
    # With --angles, an aim of radius 0 is the same episode in every direction: run it once.
    todo = [(t, r, h, e, k, a) for r in args.radii for h in args.heights for e in args.early
            for k, a in aims for t in tasks if (t, r, h, e, k, a) not in done
            and not (r == 0 and args.angles is not None and a != aims[0][1])]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        pool_to_jsonl(_worker, todo, args.workers, args.out, args.suite, name="a grasp-tolerance worker")
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    if args.out.is_file():
        print(grasp_tolerance_table(args.out), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
