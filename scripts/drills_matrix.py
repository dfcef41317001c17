"""Judge drills of many seeds at every horizon: which predicate set separates the four runs?

A drill is deterministic (same seed, same initial state, greedy decoding), so
the first ``h`` steps of a 600-step drill are what a drill of horizon ``h``
logs; ``vla-ch2 predicates verify --steps h`` judges exactly those. This
script does that for every ``seed-*`` directory under ``ROOT`` and every
horizon, with each predicate set, and writes one JSON file.

    for s in 0 1 2; do vla-ch2 drills --out runs/matrix/seed-$s --seed $s --steps 600; done
    python scripts/drills_matrix.py runs/matrix
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vla_ch2.predicates import MODES, load_runs, signature, verify_directory, working_steps  # noqa: E402


def judge(directory: Path, horizons: list[int]) -> dict:
    """Per horizon: whether each set separates the runs, and which set ``auto`` settles on (None: none does)."""
    settings = json.loads((directory / "drills.json").read_text())["baseline"]["settings"]
    rows = {}
    for h in horizons:
        row = {mode: verify_directory(directory, mode=mode, steps=h)["ok"] for mode in MODES}
        auto = verify_directory(directory, steps=h)
        row["auto"] = auto["mode"] if auto["ok"] else None
        rows[str(h)] = row
    runs = load_runs(directory)
    steps = working_steps(runs["baseline"])
    instruments = {}
    for tag, run in runs.items():
        s = signature(run)
        instruments[tag] = {
            "max_abs_translation": s["max_abs_translation"],
            "median_img_top_minus_bottom": s.get("median_img_top_minus_bottom"),
            "median_token_prob_while_baseline_works": float(run["token_prob"][:steps].median())
            if "token_prob" in run else None,
            "first_token_prob": float(run["token_prob"].iloc[0]) if "token_prob" in run else None,
            "first_img_top_minus_bottom": float(run["img_top_minus_bottom"].iloc[0])
            if "img_top_minus_bottom" in run else None,
            "median_norm_action6": s["median_norm_action6"],
            "gripper_closes": s["gripper_closes"],
            "rewarded": s["rewarded"],
        }
    return {"seed": settings["seed"], "steps": settings["steps"], "baseline_working_steps": steps,
            "horizons": rows, "signatures": instruments}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a directory of seed-* drill directories")
    parser.add_argument("--horizons", type=int, nargs=3, default=[200, 600, 50], metavar=("FIRST", "LAST", "STEP"))
    parser.add_argument("--out", type=Path, default=None, help="default: ROOT/matrix.json")
    args = parser.parse_args()
    first, last, step = args.horizons
    horizons = list(range(first, last + 1, step))
    seeds = sorted((p for p in args.root.glob("seed-*") if (p / "drills.json").is_file()),
                   key=lambda p: int(p.name.split("-")[1]))
    if not seeds:
        sys.exit(f"error: {args.root} holds no seed-*/ drills directory; run `vla-ch2 drills --out "
                 f"{args.root}/seed-0 --seed 0 --steps {last}` first")
    results = [judge(p, horizons) for p in seeds]
    out = args.out or args.root / "matrix.json"
    out.write_text(json.dumps({"horizons": horizons, "seeds": results}, indent=1) + "\n")
    for mode in (*MODES, "auto"):
        ok = sum(bool(r["horizons"][str(h)][mode]) for r in results for h in horizons)
        print(f"{mode:12s} separates {ok} of {len(results) * len(horizons)} (seed, horizon) pairs")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
