"""Where the workspace lies in the policy's image: the extents that choose the teaching model's ``view_box``.

For fresh layouts of every task (demonstration seeds, never the official
initial states) it projects through the agentview camera the points a pick and
place passes: the hand at the start, the target object on the table, 12 cm
above it and at the expert's carrying height, and the basket on the table and
at carrying height. Coordinates are fractions of the image the policy gets
(rotated, resized to 224, centre-cropped), x to the right, y down.

    python scripts/view_box.py --layouts 10 --out docs/results/v2/round4/view_box.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from vla_ch2 import conventions as C
from vla_ch2.env import LiberoTask, quiet_robosuite
from vla_ch2.factory.demos import LAYOUT_SEED_BASE
from vla_ch2.factory.expert import ExpertConfig


def projector(sim, size: int = C.RENDER_SIZE):
    """World point -> (x, y) in fractions of the policy's centre-cropped image."""
    cid = sim.model.camera_name2id(C.CAMERA)
    position, rotation = sim.data.cam_xpos[cid].copy(), sim.data.cam_xmat[cid].reshape(3, 3).copy()
    focal = (size / 2) / np.tan(np.deg2rad(sim.model.cam_fovy[cid]) / 2)
    side = np.sqrt(C.CENTER_CROP_AREA)
    low = (1 - side) / 2

    def project(point) -> list[float]:
        camera = rotation.T @ (np.asarray(point, dtype=float) - position)  # the camera looks down its -z
        u = focal * camera[0] / -camera[2] + size / 2
        v = -focal * camera[1] / -camera[2] + size / 2
        # The policy's image is the camera's view mirrored left to right (the render comes bottom row first and
        # is then rotated by 180 degrees); checked by drawing projected objects on a frame.
        return [round(1 - (u / size - low) / side, 4), round((v / size - low) / side, 4)]

    return project


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layouts", type=int, default=10, help="fresh layouts per task")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    quiet_robosuite()
    carry = ExpertConfig().carry_z
    rows = []
    for task_id in range(C.N_TASKS["libero_object"]):
        with LiberoTask("libero_object", task_id) as task:
            target = task.env.env.obj_of_interest[0]
            for k in range(args.layouts):
                obs = task.reset(layout_seed=LAYOUT_SEED_BASE + 1000 * task_id + k)
                project = projector(task.env.env.sim)
                obj, basket = np.asarray(obs[f"{target}_pos"]), np.asarray(obs["basket_1_pos"])
                rows.append({"task": task_id, "layout": k, "hand": project(obs["robot0_eef_pos"]),
                             "target": project(obj), "target_12cm_up": project(obj + [0, 0, 0.12]),
                             "target_carry": project([*obj[:2], carry]), "basket": project(basket),
                             "basket_carry": project([*basket[:2], carry])})
    extents = {}
    for key in rows[0]:
        if key in ("task", "layout"):
            continue
        points = np.array([r[key] for r in rows])
        extents[key] = {"x": [float(points[:, 0].min()), float(points[:, 0].max())],
                        "y": [float(points[:, 1].min()), float(points[:, 1].max())]}
        print(f"{key:15s} x {extents[key]['x'][0]:.3f}..{extents[key]['x'][1]:.3f}"
              f"  y {extents[key]['y'][0]:.3f}..{extents[key]['y'][1]:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"layouts_per_task": args.layouts, "extents": extents, "points": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
