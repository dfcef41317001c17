"""What the following expert told a learner near the object: DAgger labels by hand height.

Reads the episodes a DAgger collection stored (``python -m vla_ch2.factory.dagger
... --out DIR`` writes ``DIR/episodes/task<T>_k<K>.npz`` with the expert's
inputs at every step) and prints, for every kept frame while the object is
still on the table and the hand within 6 cm above it, the hand's height (cm),
the label's gripper (``C`` close, ``o`` open) and its z command:

    python -m vla_ch2.factory.dagger --model vla_ch2/checkpoints/teaching-vla-libero-object \\
        --out /tmp/dag --tasks 1,6 --per-task 4 --betas 0 --round 7 --workers 2
    python scripts/dagger_labels.py /tmp/dag/episodes
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vla_ch2.factory.dagger import load_episodes, stored_episodes, stored_observation  # noqa: E402


def near_object(episode: dict, above: float = 0.06) -> list[tuple[float, bool, float]]:
    """(hand height over the object in metres, label closes, label's z) of each kept frame near the resting object."""
    target = episode["target"]
    positions = [(obs["robot0_eef_pos"], obs[f"{target}_pos"])
                 for obs in (stored_observation(state, target) for state in episode["states"])]
    rest = positions[0][1][2]
    rows = []
    for label, step in zip(np.asarray(episode["labels"]), episode["kept"]):
        eef, obj = positions[step]
        height = float(eef[2] - obj[2])
        if obj[2] < rest + 0.02 and height < above:
            rows.append((height, bool(label[6] > 0), float(label[2])))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("episodes", type=Path, help="a DAgger collection's episodes folder")
    args = parser.parse_args(argv)
    if not stored_episodes(args.episodes):
        parser.error(f"{args.episodes}: no DAgger episodes (task<T>_k<K>.npz) there; give the collection's "
                     "episodes folder, e.g. /tmp/dag/episodes")
    for episode in load_episodes(args.episodes):
        cells = [f"{100 * h:.1f}:{'C' if closes else 'o'}{z:+.2f}" for h, closes, z in near_object(episode)]
        print(f"task {episode['task']} k {episode['k']} done {episode['done']} steps {episode['steps']}: " + " ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
