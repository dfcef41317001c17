"""The README's main command (``make run`` after setup) against its floor, measured in one run.

Runs what ``make run`` runs after setup, timing each part: the four drills
(``--workers 2``), the 50-episode sweep (``--workers 2``) and its plot, the
site build. The floor is what the command would cost if the loop, the model,
process start-up and the site were free: its simulator steps (drills and
sweep, wait steps included) at the throughput of bare ``env.step`` in as many
processes as workers, measured in the same run.

Which bare steps: every episode the command ran is replayed afterwards, its
own logged actions from its own initial state, bare, in as many processes as
workers (``parallel_replay``). That is the simulator work the command did:
grasps and carried objects cost the physics more than a free arm, so a bare
step on a fixed small action (``parallel_bare``, the earlier floor) is
as cheap as the command's own steps or cheaper (0 to 12 % in five runs on
this machine, ``bare_policy_actions_ms`` against ``bare_env_step_ms`` in
``bench.json``).
The fixed-action throughput is still measured, before the command and after
it, and its ratio is reported beside the replay's.

    python bench/main_command.py [--workers 2] [--out bench_main.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loop_overhead import parallel_bare, parallel_replay, recorded_episodes  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--no-site", action="store_true", help="leave the site build out")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from vla_ch2 import conventions as C
    from vla_ch2.drills import DEFAULT_STEPS, DRILLS, MANIFEST
    from vla_ch2.logs import read_records
    from vla_ch2.sweep import read_episodes

    vla = str(BIN / "vla-ch2")
    w = str(args.workers)
    before = parallel_bare(args.workers, 200)
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        parts = {
            "drills_s": timed([vla, "drills", "--out", str(runs / "drills"), "--videos", str(runs / "drills" / "videos"),
                               "--workers", w]),
            "sweep_s": timed([vla, "sweep", "--out", str(runs / "sweep"), "--episodes", str(args.episodes),
                              "--workers", w]),
            "plot_s": timed([vla, "plot", str(runs / "sweep"), "--out", str(runs / "sweep" / "first_close.png")]),
        }
        if not args.no_site:
            parts["site_s"] = timed(["bash", "scripts/build_site.sh"])
        rows = read_episodes(runs / "sweep")
        # Every episode the command ran, as (initial state, logged actions); each drill's seed is in its manifest.
        manifest = json.loads((runs / "drills" / MANIFEST).read_text(encoding="utf-8"))
        episodes = [(manifest[tag]["settings"]["seed"], [r["action"] for r in read_records(runs / "drills" / f"{tag}.jsonl")])
                    for tag in DRILLS]
        episodes += recorded_episodes(runs / "sweep")
    drill_steps = 4 * (DEFAULT_STEPS + C.NUM_WAIT_STEPS)
    sweep_steps = sum(r["steps"] for r in rows) + C.NUM_WAIT_STEPS * len(rows)
    after = parallel_bare(args.workers, 200)
    replay = parallel_replay(args.workers, episodes)
    if replay["steps"] != drill_steps + sweep_steps:
        raise SystemExit(f"the replay took {replay['steps']} steps, the command {drill_steps + sweep_steps}")
    fixed_rate = (before["steps_per_s"] + after["steps_per_s"]) / 2
    floor = (drill_steps + sweep_steps) / replay["steps_per_s"]
    fixed_floor = (drill_steps + sweep_steps) / fixed_rate
    wall = sum(parts.values())
    sim_wall = parts["drills_s"] + parts["sweep_s"]
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}, {os.cpu_count()} cores",
        "workers": args.workers, **{k: round(v, 1) for k, v in parts.items()},
        "wall_s": round(wall, 1), "simulator_steps": drill_steps + sweep_steps,
        "replay_steps_per_s": round(replay["steps_per_s"], 2), "floor_s": round(floor, 1),
        "wall_over_floor": round(wall / floor, 3), "drills_and_sweep_over_floor": round(sim_wall / floor, 3),
        "fixed_action_steps_per_s_before": round(before["steps_per_s"], 2),
        "fixed_action_steps_per_s_after": round(after["steps_per_s"], 2),
        "fixed_action_floor_s": round(fixed_floor, 1), "wall_over_fixed_action_floor": round(wall / fixed_floor, 3),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
