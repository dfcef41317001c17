"""Is this machine drawing the same pixels as another? Save a few renders here, compare them there.

Renders LIBERO-Object tasks 0 and 1 from official initial state 0, after the
reset and after ten still steps, and either saves the four agentview images or
compares them with a saved file (mean and largest difference in grey levels,
share of identical pixels). Used to check that the lent GPU machine renders
through Mesa exactly as this CPU machine does (``scripts/device_mesa_bundle.sh``).

Usage: ``python scripts/render_probe.py save FILE`` here, then
``python3 scripts/render_probe.py compare FILE [--label L] [--max-mean M]`` there;
with ``--max-mean`` the exit status is 3 when any image is further apart than M.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from vla_ch2.env import LiberoTask


def renders() -> dict[str, np.ndarray]:
    """The four probe images, keyed ``t{task}_{reset|step10}``."""
    frames = {}
    for task_id in (0, 1):
        task = LiberoTask("libero_object", task_id)
        try:
            obs = task.reset(init_index=0)
            frames[f"t{task_id}_reset"] = task.frame(obs).copy()
            for _ in range(10):
                obs, *_ = task.step([0, 0, 0, 0, 0, 0, -1])
            frames[f"t{task_id}_step10"] = task.frame(obs).copy()
        finally:
            task.close()
    return frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["save", "compare"])
    parser.add_argument("file")
    parser.add_argument("--label", default="here")
    parser.add_argument("--max-mean", type=float, default=None)
    args = parser.parse_args(argv)
    frames = renders()
    if args.mode == "save":
        np.savez_compressed(args.file, **frames)
        print(f"saved {len(frames)} renders to {args.file}")
        return 0
    ref = np.load(args.file)
    worst = 0.0
    for key, image in frames.items():
        diff = np.abs(image.astype(int) - ref[key].astype(int))
        worst = max(worst, float(diff.mean()))
        print(f"{args.label} {key}: mean |diff| {diff.mean():.3f} grey levels, max {diff.max()}, "
              f"identical pixels {np.mean(diff.max(-1) == 0):.3f}")
    return 3 if args.max_mean is not None and worst > args.max_mean else 0


if __name__ == "__main__":
    sys.exit(main())
