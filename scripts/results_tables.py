"""Turn the measured results under docs/results/ into Markdown tables the site embeds.

Every number on the results page comes from these files, which
``scripts/make_results.sh`` regenerates from real runs.
"""

from __future__ import annotations

import json
from pathlib import Path

R = Path("docs/results")
OUT = R / "_generated"


def drills_table(directory: Path) -> str:
    report = json.loads((directory / "verify.json").read_text())
    lines = [
        f"Predicate set used: **{report['mode']}**. " + " ".join(report.get("notes", [])),
        "",
        "| run | mean norm action[:6] | max abs action[:3] | steps with max abs action[:3] > 0.1 | gripper closes "
        "| first close | rewarded | img_mean | fires | ok |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tag, row in report["runs"].items():
        s = row["signature"]
        fired = ", ".join(p for p, v in row["fired"].items() if v) or "none"
        lines.append(
            f"| {tag} | {s['mean_norm_action6']:.3f} | {s['max_abs_translation']:.3f} "
            f"| {100 * s['fraction_translation_above_0.1']:.0f} % | {s['gripper_closes']} | {s['first_close_step']} "
            f"| {'yes' if s['rewarded'] else 'no'} | {s['img_mean']:.1f} | {fired} | {'yes' if row['ok'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def literal_table(directory: Path) -> str:
    import sys

    sys.path.insert(0, ".")
    from vla_ch2.predicates import classify, load_runs

    runs = load_runs(directory)
    lines = ["| run | bad_prompt (literal) | bad_unnorm (literal) | no_flip (literal) |", "|---|---|---|---|"]
    for tag, run in runs.items():
        fired = classify(run, runs["baseline"], "literal")
        lines.append(f"| {tag} | " + " | ".join("fires" if fired[p] else "-" for p in
                                                ("bad_prompt", "bad_unnorm", "no_flip")) + " |")
    return "\n".join(lines) + "\n"


def robustness_table() -> str:
    lines = ["| drills | predicate set | each run fires exactly its own |", "|---|---|---|"]
    for directory in sorted(R.glob("drills*")):
        if (directory / "verify.json").is_file():
            report = json.loads((directory / "verify.json").read_text())
            settings = json.loads((directory / "drills.json").read_text())["baseline"]["settings"]
            lines.append(f"| seed {settings['seed']}, {settings['steps']} steps | {report['mode']} "
                         f"| {'yes' if report['ok'] else 'no'} |")
    return "\n".join(lines) + "\n"


def sweep_table() -> str:
    s = json.loads((R / "sweep" / "summary.json").read_text())
    ref = s["reference"]
    return (
        "| episodes | successes | success rate | standard error | reference | mean steps | mean wall time per episode |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| {s['episodes']} | {s['successes']} | {100 * s['success_rate']:.1f} % | {100 * s['standard_error']:.1f} points "
        f"| {100 * ref['success_rate']:.1f} % ({ref['source']}) | {s['mean_steps']:.0f} | {s['mean_wall_s']:.1f} s |\n\n"
        f"Verdict written by the sweep: *{s['verdict']}*\n"
    ) if ref else f"| {s['episodes']} | {s['successes']} | {100 * s['success_rate']:.1f} % |\n"


def first_close_summary() -> str:
    rows = [json.loads(line) for line in (R / "sweep" / "episodes.jsonl").read_text().splitlines()]
    wins = [r["first_close_step"] for r in rows if r["success"] and r["first_close_step"] is not None]
    losses = [r for r in rows if not r["success"]]
    never = sum(1 for r in losses if r["first_close_step"] is None)
    immediate = sum(1 for r in losses if r["first_close_step"] is not None and r["first_close_step"] < 5)
    inside = sum(1 for s in wins if 60 <= s <= 100)
    lines = ["| measure | value |", "|---|---|"]
    if wins:
        lines += [f"| successes: first close, min / median / max | {min(wins)} / {sorted(wins)[len(wins) // 2]} / "
                  f"{max(wins)} |",
                  f"| successes whose first close lies in steps 60 to 100 (the chapter's band) | {inside} of {len(wins)} |"]
    lines += [f"| failures | {len(losses)} |", f"| failures that never close | {never} |",
              f"| failures that close within the first 5 steps | {immediate} |",
              f"| failures that close later | {len(losses) - never - immediate} |"]
    return "\n".join(lines) + "\n"


def tasks_table() -> str:
    lines = ["| task | instruction | episodes | success rate | standard error |", "|---|---|---|---|---|"]
    rows = [(0, R / "sweep")] + [(int(p.name.split("-")[1]), p) for p in sorted(R.glob("tasks/task-*"))]
    demos = json.loads(Path("vla_ch2/checkpoints/teaching-vla-libero-object/demos.json").read_text())
    names = {str(d["task_id"]): d["language"] for d in demos}
    for task, directory in sorted(rows):
        if not (directory / "summary.json").is_file():
            continue
        s = json.loads((directory / "summary.json").read_text())
        lines.append(f"| {task} | {names.get(str(task), '')} | {s['episodes']} | {100 * s['success_rate']:.0f} % "
                     f"| {100 * s['standard_error']:.1f} |")
    return "\n".join(lines) + "\n"


def bench_table() -> str:
    b = json.loads((R / "bench.json").read_text())
    rows = "\n".join(f"| {k} | {v} |" for k, v in b.items())
    return "| measure | value |\n|---|---|\n" + rows + "\n"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    makers = {
        "drills.md": lambda: drills_table(R / "drills"),
        "drills_literal.md": lambda: literal_table(R / "drills"),
        "drills_robustness.md": robustness_table,
        "sweep.md": sweep_table,
        "first_close.md": first_close_summary,
        "tasks.md": tasks_table,
        "bench.md": bench_table,
    }
    for name, make in makers.items():
        try:
            text = make()
        except FileNotFoundError as exc:
            text = f"*Not measured yet ({exc.filename} is missing): run `bash scripts/make_results.sh`.*\n"
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
