"""Plots: the first-close histogram of a sweep, and rollout animations.

The histogram (Exercise 2.x.2) puts episodes on the step at which the gripper
first closes, coloured by outcome, with "never closes" as its own bar. It is a
description, not a metric: it shows *when* the policy commits to a grasp.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

COLORS = {"success": "#2a9d8f", "failure": "#e76f51"}


def first_close_histogram(rows: list[dict], out: str | os.PathLike, bin_width: int = 10, title: str | None = None):
    """Draw the histogram of ``first_close_step`` by outcome; write ``out`` (.png) and its .svg twin.

    Returns the paths written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("no episodes to plot: run `vla-ch2 sweep` first")
    closes = [r["first_close_step"] for r in rows if r["first_close_step"] is not None]
    top = max(closes, default=0)
    edges = np.arange(0, top + bin_width + 1, bin_width)
    never_x = edges[-1] + bin_width  # its own bar, right of the axis
    fig, ax = plt.subplots(figsize=(7.5, 4))
    bottom = np.zeros(len(edges) - 1)
    never_bottom = 0
    for outcome, wanted in (("success", True), ("failure", False)):
        steps = [r["first_close_step"] for r in rows if r["success"] is wanted and r["first_close_step"] is not None]
        counts, _ = np.histogram(steps, bins=edges)
        ax.bar(edges[:-1], counts, width=bin_width, bottom=bottom, align="edge", color=COLORS[outcome],
               edgecolor="white", label=f"{outcome} ({sum(1 for r in rows if r['success'] is wanted)})")
        bottom += counts
        never = sum(1 for r in rows if r["success"] is wanted and r["first_close_step"] is None)
        if never:
            ax.bar(never_x, never, width=bin_width, bottom=never_bottom, align="edge", color=COLORS[outcome],
                   edgecolor="black", hatch="//")
        never_bottom += never
    ticks = list(edges[:: max(1, len(edges) // 8)]) + [never_x + bin_width / 2]
    ax.set_xticks(ticks, [str(int(t)) for t in ticks[:-1]] + ["never\ncloses"])
    ax.set_xlabel("step of first gripper close (seventh action element > 0.5)")
    ax.set_ylabel("episodes")
    ax.set_title(title or f"First gripper close over {len(rows)} episodes")
    ax.legend()
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths


def save_video(frames: list[np.ndarray], out: str | os.PathLike, every: int = 5, size: int = 256) -> Path:
    """Save upright frames as a looping animated WebP (every ``every``-th frame, at 20 / ``every`` frames a second).

    At the render's own 256 x 256 (a GIF of the same frames is about ten times larger, so GIFs had to be shrunk
    to be shipped; WebP keeps the detail a reader needs to see where the arm goes).
    """
    from PIL import Image

    if not frames:
        raise ValueError("no frames to save")
    picked = [Image.fromarray(np.ascontiguousarray(f)).resize((size, size), Image.BILINEAR) for f in frames[::every]]
    out = Path(out).with_suffix(".webp")
    out.parent.mkdir(parents=True, exist_ok=True)
    picked[0].save(out, save_all=True, append_images=picked[1:], duration=int(1000 * every / 20), loop=0,
                   quality=70, method=4)
    return out
