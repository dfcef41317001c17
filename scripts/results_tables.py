"""Turn the measured results under docs/results/ into Markdown tables the site embeds.

Every number on the results page comes from these files, which
``scripts/make_results.sh`` regenerates from real runs.
"""

from __future__ import annotations

import json
from pathlib import Path

R = Path("docs/results")
OUT = R / "_generated"


def _vla():
    import sys

    sys.path.insert(0, ".")
    from vla_ch2 import predicates

    return predicates


def drills_table(directory: Path) -> str:
    P = _vla()
    report = json.loads((directory / "verify.json").read_text())
    runs = P.load_runs(directory)
    working = P.working_steps(runs["baseline"])
    lines = [
        f"Predicate set `vla-ch2 predicates verify` used: **{report['mode']}**.",
        "",
        *[f"- {note}" for note in report.get("notes", [])],
        "",
        "| run | mean norm action[:6] | median norm action[:6] | max abs action[:3] "
        "| steps with max abs action[:3] > 0.1 | gripper closes | first close | rewarded | img_mean "
        "| median img_top_minus_bottom | median token_prob, first " + str(working) + " steps | fires | ok |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tag, row in report["runs"].items():
        s = row["signature"]
        fired = ", ".join(p for p, v in row["fired"].items() if v) or "none"
        run = runs[tag]
        tb = f"{run['img_top_minus_bottom'].median():.1f}" if "img_top_minus_bottom" in run else "not logged"
        tp = f"{run['token_prob'][:working].median():.3f}" if "token_prob" in run else "not logged"
        lines.append(
            f"| {tag} | {s['mean_norm_action6']:.3f} | {s['median_norm_action6']:.3f} | {s['max_abs_translation']:.3f} "
            f"| {100 * s['fraction_translation_above_0.1']:.0f} % | {s['gripper_closes']} | {s['first_close_step']} "
            f"| {'yes' if s['rewarded'] else 'no'} | {s['img_mean']:.1f} | {tb} | {tp} | {fired} "
            f"| {'yes' if row['ok'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def sets_table(directory: Path) -> str:
    """Which predicates each of the three sets fires on each run."""
    P = _vla()
    runs = P.load_runs(directory)
    lines = ["| run | " + " | ".join(f"{mode}: fires" for mode in P.MODES) + " |", "|---|---|---|---|"]
    for tag, run in runs.items():
        cells = []
        for mode in P.MODES:
            fired = P.classify(run, runs["baseline"], mode)
            cells.append(", ".join(p for p in P.PREDICATES if fired[p]) or "none")
        lines.append(f"| {tag} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def robustness_table() -> str:
    """The real drills of other seeds and horizons, one row each."""
    lines = ["| drills | set that separates the runs (auto) | literal | calibrated | instrumented |",
             "|---|---|---|---|---|"]
    P = _vla()
    for directory in sorted(R.glob("drills-seed*")) + [R / "drills"]:
        if (directory / "drills.json").is_file():
            settings = json.loads((directory / "drills.json").read_text())["baseline"]["settings"]
            auto = P.verify_directory(directory)
            cells = ["yes" if P.verify_directory(directory, mode=m)["ok"] else "no" for m in P.MODES]
            lines.append(f"| seed {settings['seed']}, {settings['steps']} steps | "
                         f"{auto['mode'] if auto['ok'] else 'none'} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def matrix_table(root: Path = R / "drills-matrix") -> str:
    """Seeds x horizons: which set ``verify`` settled on (C calibrated, I instrumented, - none)."""
    m = json.loads((root / "matrix.json").read_text())
    horizons = m["horizons"]
    short = {"literal": "L", "calibrated": "C", "instrumented": "I", None: "**none**"}
    lines = ["| seed | baseline rewarded at step | " + " | ".join(str(h) for h in horizons) + " |",
             "|---" * (len(horizons) + 2) + "|"]
    for entry in m["seeds"]:
        working = entry["baseline_working_steps"]
        rewarded = str(working - 1) if entry["signatures"]["baseline"]["rewarded"] else "never (600)"
        lines.append(f"| {entry['seed']} | {rewarded} | "
                     + " | ".join(short[entry["horizons"][str(h)]["auto"]] for h in horizons) + " |")
    total = len(m["seeds"]) * len(horizons)
    counts = []
    for mode in ("literal", "calibrated", "instrumented", "auto"):
        ok = sum(bool(e["horizons"][str(h)][mode]) for e in m["seeds"] for h in horizons)
        counts.append(f"| {mode} | {ok} of {total} |")
    return ("\n".join(lines) + "\n\nL, C, I: the first set that separated the four runs (literal, calibrated, "
            "instrumented); **none**: no set did.\n\n| predicate set | (seed, horizon) pairs it separates on "
            "its own |\n|---|---|\n" + "\n".join(counts) + "\n")


def matrix_signatures() -> str:
    """Per seed, at 600 steps: the number each instrument reads on each failure, relative to the baseline."""
    m = json.loads((R / "drills-matrix" / "matrix.json").read_text())
    lines = ["| seed | max abs action[:3]: bad_unnorm / baseline | img_top_minus_bottom: no_flip, baseline "
             "| token_prob at step 0: baseline, bad_prompt, bad_unnorm "
             "| token_prob while the baseline works: bad_prompt / baseline | no_flip / baseline "
             "| bad_prompt median norm action[:6] |", "|---|---|---|---|---|---|---|"]
    for e in m["seeds"]:
        s = e["signatures"]
        b = s["baseline"]
        tp = "median_token_prob_while_baseline_works"
        lines.append(
            f"| {e['seed']} | {s['bad_unnorm']['max_abs_translation'] / b['max_abs_translation']:.3f} "
            f"| {s['no_flip']['median_img_top_minus_bottom']:.1f}, {b['median_img_top_minus_bottom']:.1f} "
            f"| {b['first_token_prob']:.4f}, {s['bad_prompt']['first_token_prob']:.4f}, "
            f"{s['bad_unnorm']['first_token_prob']:.4f} "
            f"| {s['bad_prompt'][tp] / b[tp]:.2f} | {s['no_flip'][tp] / b[tp]:.2f} "
            f"| {s['bad_prompt']['median_norm_action6']:.3f} |")
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


def bench_table(name: str = "bench.json") -> str:
    b = json.loads((R / name).read_text())
    rows = "\n".join(f"| {k} | {v} |" for k, v in b.items())
    return "| measure | value |\n|---|---|\n" + rows + "\n"


def taxonomy_table() -> str:
    """The failure taxonomy: what §2.4 says, what the mechanism predicts, what the drills measured, what is credited."""
    import sys

    sys.path.insert(0, ".")
    from vla_ch2 import taxonomy as T

    facts = T.measured()
    models = facts.models or (("the teaching model", facts),)
    lines = ["| failure | §2.4 says | the mechanism predicts | the drills measured (" + "; ".join(
             f"{name}: {f.seeds} seeds of {f.steps} steps" for name, f in models) + ") | a sentence of 2.x.4 is "
             "credited for |", "|---|---|---|---|---|"]
    for cid, cause in T.CAUSES.items():
        claim = T.CHAPTER[cid]
        measured_cells = []
        for name, f in models:
            counts = "; ".join(f"{T.SYMPTOMS.get(s, 'succeeds')}: {n}" for s, n in
                               sorted(f.symptoms[cid].items(), key=lambda kv: -kv[1]))
            low, high = f.scale_ratio[cid]
            measured_cells.append(f"**{name}**: {counts} (largest translation {low:.3g} to {high:.3g} times the "
                                  "baseline's)")
        credited = [f"*{T.SYMPTOMS[s]}* ({' and '.join(T.credited_causes(s, facts)[cid])})"
                    for s in T.SYMPTOMS if cid in T.credited_causes(s, facts)]
        cells = [f"`{cause.tag}` ({cause.toggle}={cause.drill_value!r})",
                 f"*{T.SYMPTOMS[claim.symptom]}*; diagnostic: {claim.diagnostic}", T.mechanism_summary(cid),
                 "<br>".join(measured_cells), "; ".join(credited) or "none"]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def fixtures_table() -> str:
    """The real drills the relative predicates of 2.x.1 are graded on, and what their five fields can tell."""
    import sys

    sys.path.insert(0, ".")
    from vla_ch2 import taxonomy as T
    from vla_ch2.checking.ex_2x1 import demands, fixture_drills

    lines = ["| drill | baseline rewarded | bad_prompt: median norm(action[:6]) (face) | what the five fields can tell |",
             "|---|---|---|---|"]
    for label, runs in fixture_drills():
        want = demands(runs)
        if want["no_flip"]["no_flip"] is None:
            tell = "only the statistics: without a rewarded baseline, no_flip and bad_prompt are both just unrewarded"
        elif want["bad_prompt"]["bad_prompt"] is None:
            how = "drives like" if T.prompt_face(runs["bad_prompt"]) == "drive" else "is too close to the threshold to tell from"
            tell = f"all but one thing: the prompt {how} a missing flip (either predicate may fire, not both)"
        else:
            tell = "everything: each broken run matches exactly its own predicate"
        lines.append(f"| {label} | {'yes' if T.rewarded(runs['baseline']) else 'no'} | "
                     f"{T.median_arm_norm(runs['bad_prompt']):.3f} ({T.prompt_face(runs['bad_prompt'])}) | {tell} |")
    return "\n".join(lines) + "\n"


def agreement_table(sets=("dev", "holdout", "holdout_v2", "holdout_v3", "holdout_v4", "holdout_v5", "holdout_v6", "holdout_v7",
                                  "holdout_v8")) -> str:
    """Agreement of the free-text graders with the hand-graded sets: first measurement on unseen answers, and now."""
    import sys

    sys.path.insert(0, ".")
    from vla_ch2.checking.agreement import measure

    root = Path("tests/data/hand_graded")
    first = json.loads((root / "first_measurements.json").read_text())

    def cell(agreed: int, items: int) -> str:
        return f"{agreed} of {items} ({100 * agreed / items:.1f} %)"

    lines = ["| set | sentences (2.x.4): first measured, unseen | now | worksheets (2.x.3), per box: first measured, "
             "unseen | now |", "|---|---|---|---|---|"]
    totals = {"sentences": [0, 0], "worksheets": [0, 0]}
    for name in sets:
        base = root / name if (root / name).is_dir() else root
        if not (base / f"sentences_{name}.jsonl").is_file():
            continue
        now = measure(root, name)
        row = [name]
        for kind in ("sentences", "worksheets"):
            if name in first:
                agreed, items = first[name][kind]
                totals[kind][0] += agreed
                totals[kind][1] += items
                row.append(cell(agreed, items) + f" at `{first[name]['graders_at']}`")
            else:
                row.append("built against it")
            row.append(cell(now[kind]["agreed"], now[kind]["items"]))
        lines.append("| " + " | ".join(row) + " |")
    if totals["sentences"][1]:
        lines.append(f"| all held-out sets, first measurement | {cell(*totals['sentences'])} | | "
                     f"{cell(*totals['worksheets'])} | |")
    return "\n".join(lines) + "\n"


def _signature_rows(old_sum: dict, new_sum: dict, change: str) -> list[str]:
    """Per seed and drill of ``new_sum``: each signature before -> after (``change`` names the two, e.g. "v1 -> v2")."""
    lines = [f"| seed | drill | symptom, {change} | largest translation / baseline's | median norm(action[:6]) "
             "| median img_top_minus_bottom | median token_prob |", "|---|---|---|---|---|---|---|"]
    for seed in sorted(new_sum, key=int):
        for tag in ("baseline", "no_flip", "bad_prompt", "bad_unnorm"):
            a, b = old_sum[seed][tag], new_sum[seed][tag]
            pair = lambda key, f="{:.3f}": f"{f.format(a[key])} -> {f.format(b[key])}"  # noqa: E731
            lines.append(f"| {seed} | {tag} | {a['symptom'] or '-'} -> {b['symptom'] or '-'} | "
                         f"{pair('scale_ratio', '{:.4f}')} | {pair('median_arm_norm')} | "
                         f"{pair('median_img_top_minus_bottom', '{:+.1f}')} | {pair('median_token_prob')} |")
    return lines


def image_path_table() -> str:
    """The teaching model (trained on the Pillow path) evaluated on the Pillow and the TensorFlow-faithful paths."""
    import sys

    sys.path.insert(0, ".")
    from vla_ch2 import taxonomy as T

    def sweep(directory: Path) -> tuple:
        rows = [json.loads(line) for line in (directory / "episodes.jsonl").read_text().splitlines()]
        wins = {r["seed"]: r["success"] for r in rows}
        return rows, wins

    old_rows, old = sweep(R / "sweep")
    new_rows, new = sweep(R / "faithful" / "sweep")
    n_old, n_new = len(old), len(new)
    p_old, p_new = sum(old.values()) / n_old, sum(new.values()) / n_new
    se = lambda p, n: 100 * (p * (1 - p) / n) ** 0.5  # noqa: E731
    lost = sorted(s for s in old if old[s] and not new.get(s, True))
    gained = sorted(s for s in old if not old[s] and new.get(s, False))
    lines = ["| image path | task-0 sweep | mean steps | seeds that changed outcome |", "|---|---|---|---|",
             f"| Pillow (the path the model was trained on) | {sum(old.values())}/{n_old} = {100 * p_old:.1f} % "
             f"+- {se(p_old, n_old):.1f} | {sum(r['steps'] for r in old_rows) / n_old:.1f} | |",
             f"| TensorFlow-faithful (now the loop's) | {sum(new.values())}/{n_new} = {100 * p_new:.1f} % "
             f"+- {se(p_new, n_new):.1f} | {sum(r['steps'] for r in new_rows) / n_new:.1f} | now failing: "
             f"{', '.join(map(str, lost)) or 'none'}; now succeeding: {', '.join(map(str, gained)) or 'none'} |",
             ""]
    faithful = R / "faithful" / "drills-matrix"
    if faithful.is_dir():
        new_sum = T.summarise(faithful)["seeds"]
        old_sum = T.summarise(R / "drills-matrix")["seeds"]
        lines += _signature_rows(old_sum, new_sum, "Pillow -> faithful")
        from vla_ch2.predicates import verify_directory

        settled = []
        for seed in sorted(new_sum, key=int):
            report = verify_directory(faithful / f"seed-{seed}")
            settled.append(f"seed {seed}: {report['mode'] + ' set' if report['ok'] else 'none'}")
        lines += ["", "Which predicate set separates the four faithful-path runs (`vla-ch2 predicates verify`): "
                  + "; ".join(settled) + "."]
    return "\n".join(lines) + "\n"


def suite_table(directory: Path = R / "suite") -> str:
    """The suite sweep: one row per task, the suite average, and the published suite averages beside it."""
    s = json.loads((directory / "suite.json").read_text())
    demos = json.loads(Path("vla_ch2/checkpoints/teaching-vla-libero-object/demos.json").read_text())
    names = {d["task_id"]: d["language"] for d in demos}
    import sys

    sys.path.insert(0, ".")
    from vla_ch2.sweep import read_episodes

    def first_five(rows: list[dict]) -> tuple[int, int] | None:
        """Successes on official initial states 0..4 (what v1 was measured on for tasks 1 to 9)."""
        five = [r for r in rows if r["seed"] < 5]
        return (sum(r["success"] for r in five), len(five)) if rows else None

    lines = ["| task | instruction | successes | success rate | standard error | mean steps | states 0-4: v2 | "
             "states 0-4: v1 |", "|---|---|---|---|---|---|---|---|"]
    v1_totals, v2_totals = [0, 0], [0, 0]
    for t in s["tasks"]:
        rows = read_episodes(directory / f"task-{t['task']}")
        v1_dir = R / "sweep" if t["task"] == 0 else R / "tasks" / f"task-{t['task']}"
        v2, v1 = first_five(rows), first_five(read_episodes(v1_dir))
        for totals, pair in ((v2_totals, v2), (v1_totals, v1)):
            if pair:
                totals[0] += pair[0]
                totals[1] += pair[1]
        lines.append(f"| {t['task']} | {names.get(t['task'], '')} | {t['successes']}/{t['episodes']} "
                     f"| {100 * t['success_rate']:.0f} % | {100 * t['standard_error']:.1f} "
                     f"| {sum(r['steps'] for r in rows) / len(rows):.0f} | {'%d/%d' % v2 if v2 else '-'} "
                     f"| {'%d/%d' % v1 if v1 else '-'} |")
    lines.append(f"| **suite** | all {len(s['tasks'])} tasks, episodes pooled | **{s['successes']}/{s['episodes']}** "
                 f"| **{100 * s['success_rate']:.1f} %** | **{100 * s['standard_error']:.1f}** | | "
                 f"{v2_totals[0]}/{v2_totals[1]} | {v1_totals[0]}/{v1_totals[1]} |")
    protocol = ("the whole protocol (every task, 50 official initial states each)" if s["whole_suite"]
                else f"part of the protocol only ({s['episodes']} of 500 episodes: tasks "
                     f"{', '.join(str(t['task']) for t in s['tasks'])}): not comparable with the published suite averages")
    lines += ["", f"Measured on {protocol}; {s['errored']} episodes errored. The last two columns compare the two "
              "teaching models on the same five official initial states of each task (v1 was measured on states 0-4 "
              "only for tasks 1 to 9), on the image path each was evaluated with (v1: Pillow's).", "",
              "| policy (published, LIBERO-Object suite average) | success rate |", "|---|---|"]
    for ref in s["published"]:
        lines.append(f"| {ref['policy']} | {100 * ref['success_rate']:.1f} % +- {100 * ref['standard_error']:.1f} |")
    if s["published"]:
        lines.append(f"\nSource: {s['published'][0]['source']}.")
    return "\n".join(lines) + "\n"


def candidate_suite(candidate: Path, shipped: Path = R / "suite") -> str:
    """A candidate's finished official-state run beside the shipped model's, task by task, with the difference."""
    runs = [json.loads((d / "suite.json").read_text()) for d in (shipped, candidate)]
    for d, s in zip((shipped, candidate), runs):
        if not s["whole_suite"]:
            raise ValueError(f"{d}: the run covers {s['episodes']} of 500 episodes; a table comes from a finished run only")
    by_task = [{t["task"]: t for t in s["tasks"]} for s in runs]
    lines = ["| task | v2 (shipped) | candidate | difference |", "|---|---:|---:|---:|"]
    for task in sorted(by_task[0]):
        old, new = by_task[0][task], by_task[1][task]
        lines.append(f"| {task} | {old['successes']}/{old['episodes']} | {new['successes']}/{new['episodes']} "
                     f"| {new['successes'] - old['successes']:+d} |")
    old, new = runs
    se = 100 * (old["standard_error"] ** 2 + new["standard_error"] ** 2) ** 0.5
    lines.append(f"| **suite** | **{old['successes']}/{old['episodes']}** ({100 * old['success_rate']:.1f} % +- "
                 f"{100 * old['standard_error']:.1f}) | **{new['successes']}/{new['episodes']}** ({100 * new['success_rate']:.1f} % +- "
                 f"{100 * new['standard_error']:.1f}) | {new['successes'] - old['successes']:+d} (+- {se:.1f} points) |")
    return "\n".join(lines) + "\n"


def suite_failures(directory: Path = R / "suite", tail: int = 40) -> str:
    """How each task's failed episodes end: over their last ``tail`` steps, still or moving, gripper open or closed."""
    import sys

    import numpy as np

    sys.path.insert(0, ".")
    from vla_ch2.logs import read_records
    from vla_ch2.sweep import read_episodes

    s = json.loads((directory / "suite.json").read_text())
    lines = ["| task | failures | still, gripper open | still, gripper closed | still moving |", "|---|---|---|---|---|"]
    for t in s["tasks"]:
        task_dir = directory / f"task-{t['task']}"
        rows = read_episodes(task_dir)
        counts = {"open": 0, "closed": 0, "moving": 0}
        failed = [r for r in rows if not r["success"]]
        for r in failed:
            actions = np.array([x["action"] for x in read_records(task_dir / "episodes" / f"seed-{r['seed']}.jsonl")])
            if np.abs(actions[-tail:, :3]).max() >= 0.01:
                counts["moving"] += 1
            else:
                counts["closed" if actions[-1, 6] > 0 else "open"] += 1
        lines.append(f"| {t['task']} | {len(failed)} | {counts['open']} | {counts['closed']} | {counts['moving']} |")
    return "\n".join(lines) + "\n"


def v1_v2_signatures(old: Path = R / "drills-matrix", new: Path = R / "v2" / "drills-matrix",
                     first: Path = R / "v2-first" / "drills-matrix") -> str:
    """Each drill's signature on the same seeds, teaching model v1 (its 50-seed matrix) against v2; the
    symptom counts also for ``first``, the first v2 weights (shipped before the current ones)."""
    import sys

    sys.path.insert(0, ".")
    from vla_ch2 import taxonomy as T
    from vla_ch2.predicates import verify_directory

    new_sum = T.summarise(new)["seeds"]
    old_sum = T.summarise(old)["seeds"]
    first_sum = T.summarise(first)["seeds"]
    lines = _signature_rows(old_sum, new_sum, "v1 -> v2")
    models = (("v1", old_sum), ("v2-first", first_sum), ("v2", new_sum))
    counts, seeds_of = {}, {}
    for model, summary in models:
        seeds_of[model] = [seed for seed in new_sum if seed in summary]  # v2's seeds that this model ran too
        for seed in seeds_of[model]:
            for tag in ("no_flip", "bad_prompt", "bad_unnorm"):
                symptom = summary[seed][tag]["symptom"] or "succeeds"
                counts.setdefault(tag, {}).setdefault(model, {}).setdefault(symptom, 0)
                counts[tag][model][symptom] += 1
    lines += ["", "Symptoms over v2's seeds (each model on those of them it ran):", "",
              "| drill | " + " | ".join(f"{m} ({len(seeds_of[m])} seeds)" for m, _ in models) + " |",
              "|---|" + "---|" * len(models)]
    for tag, by_model in counts.items():
        cell = lambda m: ", ".join(f"{k}: {v}" for k, v in sorted(by_model.get(m, {}).items()))  # noqa: E731
        lines.append(f"| {tag} | " + " | ".join(cell(m) for m, _ in models) + " |")
    settled = []
    for seed in sorted(new_sum, key=int):
        report = verify_directory(new / f"seed-{seed}")
        settled.append(f"seed {seed}: {report['mode'] + ' set' if report['ok'] else 'none'}")
    lines += ["", "Which predicate set separates v2's four runs (`vla-ch2 predicates verify`): " + "; ".join(settled) + "."]
    return "\n".join(lines) + "\n"


def validation_table(directory: Path = R / "v2" / "round2") -> str:
    """Candidates on fresh validation layouts: one row each, per-task successes, total with its standard error."""
    candidates = json.loads((directory / "candidates.json").read_text())
    # A candidate measured in an earlier round on the same layouts names that round's file ("validation").
    files = dict.fromkeys([directory / "validation.jsonl"] + [Path(c["validation"]) for c in candidates if "validation" in c])
    rows = [json.loads(line) for path in files for line in path.read_text().splitlines() if line.strip()]
    tasks = sorted({r["task"] for r in rows})
    lines = ["| model | data | training | " + " | ".join(f"t{t}" for t in tasks) + " | all |",
             "|---|---|---|" + "---:|" * (len(tasks) + 1)]
    for c in candidates:
        mine = [r for r in rows if r["model"] == c["model"]]
        if not mine:
            raise ValueError(f"{directory / 'candidates.json'}: no validation episodes of {c['model']}")
        n, s = len(mine), sum(r["success"] for r in mine)
        se = 100 * ((s / n) * (1 - s / n) / n) ** 0.5
        # a task the candidate was not run on reads "-" (its total counts only the episodes it ran)
        cells = [f"{sum(r['success'] for r in mine if r['task'] == t)}/{n_t}" if (n_t := sum(r['task'] == t for r in mine))
                 else "-" for t in tasks]
        lines.append(f"| {c['name']} | {c['data']} | {c['training']} | " + " | ".join(cells)
                     + f" | **{s}/{n}** ({100 * s / n:.1f} % +- {se:.1f}) |")
    return "\n".join(lines) + "\n"


def arm_start_table(spec: Path = R / "v2" / "noisy-start" / "models.json") -> str:
    """Each model three ways, task by task: fresh layouts with the arm at home, the same layouts with the
    official states' arm start (both on this CPU, 8 layouts a task), and the 50 official states."""
    lines = ["| model | starts | " + " | ".join(f"t{t}" for t in range(10)) + " | all |", "|---|---|" + "---:|" * 11]
    for m in json.loads(spec.read_text()):
        official = {t["task"]: (t["successes"], t["episodes"]) for t in
                    json.loads((Path(m["official"]) / "suite.json").read_text())["tasks"]}
        for label, key in (("fresh layouts, arm at home", "home"), ("the same layouts, official-like arm start", "start")):
            rows = [json.loads(line) for line in Path(m[key]["file"]).read_text().splitlines() if line.strip()]
            mine = [r for r in rows if r["model"] == m[key]["model"] and r["k"] < 8]
            if not mine:
                raise ValueError(f"{m[key]['file']}: no episodes of {m[key]['model']}")
            cells = {t: (sum(r["success"] for r in mine if r["task"] == t), sum(r["task"] == t for r in mine))
                     for t in range(10)}
            lines.append(f"| {m['name']} | {label} | " + " | ".join(f"{s}/{n}" if n else "-" for s, n in cells.values())
                         + f" | **{sum(s for s, _ in cells.values())}/{sum(n for _, n in cells.values())}** |")
        lines.append(f"| {m['name']} | the 50 official states | " + " | ".join(f"{s}/{n}" for s, n in official.values())
                     + f" | **{sum(s for s, _ in official.values())}/{sum(n for _, n in official.values())}** |")
    return "\n".join(lines) + "\n"


def layouts_table(path: Path = R / "v2" / "noisy-start" / "layouts.jsonl") -> str:
    """Official states beside fresh layouts (``scripts/layout_stats.py``): objects, target, the gripper's start."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("layout_stats", Path(__file__).with_name("layout_stats.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.summary(path)


def validation_by_layout(path: Path = R / "v2" / "round10" / "validation_before_fix.jsonl") -> str:
    """Successes of each model by validation layout index k (summed over the tasks): how the rendering bug showed."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    ks = sorted({r["k"] for r in rows})
    lines = ["| model | " + " | ".join(f"k={k}" for k in ks) + " | all |", "|---|" + "---:|" * (len(ks) + 1)]
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        cells = [f"{sum(r['success'] for r in mine if r['k'] == k)}/{sum(r['k'] == k for r in mine)}" for k in ks]
        lines.append(f"| `{model}` | " + " | ".join(cells) + f" | **{sum(r['success'] for r in mine)}/{len(mine)}** |")
    return "\n".join(lines) + "\n"


def grasp_tolerance_table(path: Path = R / "v2" / "grasp_tolerance.jsonl") -> str:
    """The expert closing aside, higher or earlier than it should (scripts/grasp_tolerance.py): successes per object."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    tasks = sorted({r["task"] for r in rows})
    names = {r["task"]: r["object"].rsplit("_", 1)[0].replace("_", " ") for r in rows}
    lines = ["| closing off by | " + " | ".join(f"{t}: {names[t]}" for t in tasks) + " |",
             "|---|" + "---:|" * len(tasks)]
    aims = sorted({(r["radius"], r["height"], r["early"]) for r in rows}, key=lambda a: (a[2] > 0, a[1] > 0, a[2], a[1], a[0]))
    for aim in aims:
        cells = []
        for t in tasks:
            mine = [r for r in rows if r["task"] == t and (r["radius"], r["height"], r["early"]) == aim]
            cells.append(f"{sum(r['success'] for r in mine)}/{len(mine)}")
        radius, height, early = aim
        label = (f"{100 * early:.1f} cm early, going on down" if early else f"{100 * height:.1f} cm higher" if height > 0
                 else f"{-100 * height:.1f} cm lower" if height < 0 else f"{100 * radius:.1f} cm aside" if radius
                 else "on target")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def grasp_heights_table(path: Path = R / "v2" / "round13" / "grasp_heights.jsonl") -> str:
    """The expert closing lower or higher than usual, aimed right: successes and the heights it really closed at."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    tasks = sorted({r["task"] for r in rows})
    names = {r["task"]: r["object"].rsplit("_", 1)[0].replace("_", " ") for r in rows}
    lines = ["| closing | " + " | ".join(f"{t}: {names[t]}" for t in tasks) + " |", "|---|" + "---:|" * len(tasks)]
    for height in sorted({r["height"] for r in rows}):
        label = (f"{100 * height:.1f} cm higher" if height > 0 else f"{-100 * height:.1f} cm lower" if height < 0
                 else "at its usual height")
        cells = []
        for t in tasks:
            mine = [r for r in rows if r["task"] == t and r["height"] == height]
            # closing height: the hand's height over the object's origin when the fingers began to close
            z = [100 * r["close_hand_minus_object"][2] for r in mine if r.get("close_hand_minus_object")]
            spread = f" (closed {min(z):.1f} to {max(z):.1f} cm up)" if z else ""
            cells.append(f"{sum(r['success'] for r in mine)}/{len(mine)}{spread}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: The expert aimed along world x only: the graspable ranges of rounds 4 and 5.
WINDOW_FILES = (R / "v2" / "round4" / "grasp_window_task1.jsonl", R / "v2" / "round4" / "grasp_window_task5.jsonl",
                *(R / "v2" / "round5" / f"grasp_window_task{t}.jsonl" for t in (2, 3, 7, 9)))


def grasp_window(paths=WINDOW_FILES) -> dict:
    """{(object, aim x in cm from its origin): [successes, episodes]} from ``grasp_tolerance.py --angles 0 180`` rows.

    The aim is counted from each row's own usual aim (``grasp_xy``), which has moved.
    """
    rows = [json.loads(line) for path in paths for line in Path(path).read_text().splitlines() if line.strip()]
    grasped: dict = {}
    for r in rows:
        if r["angle_deg"] not in (0.0, 180.0) or r["height"] or r["early"]:
            raise ValueError(f"{r['object']}: a row aimed off world x (angle {r['angle_deg']}, height {r['height']}, "
                             f"early {r['early']}); this table is for --angles 0 180 alone")
        if r["radius"] == 0 and r["angle_deg"] == 180.0:
            continue  # the same episode as at 0 degrees (grasp_tolerance.py runs it once now)
        x = round(100 * (r["grasp_xy"][0] + (r["radius"] if r["angle_deg"] == 0.0 else -r["radius"])), 1)
        tally = grasped.setdefault((r["object"].rsplit("_", 1)[0], x), [0, 0])
        tally[0] += r["success"]
        tally[1] += 1
    return grasped


def grasp_window_table(paths=WINDOW_FILES) -> str:
    """Grasps by the expert aimed along world x only (``grasp_tolerance.py --angles 0 180``), per object: where they hold."""
    grasped = grasp_window(paths)
    names = sorted({n for n, _ in grasped})
    xs = sorted({x for _, x in grasped})
    lines = ["| aimed at x (cm from the object's origin) | " + " | ".join(n.replace("_", " ") for n in names) + " |",
             "|---:|" + "---:|" * len(names)]
    for x in xs:
        cells = [f"{grasped[(n, x)][0]}/{grasped[(n, x)][1]}" if (n, x) in grasped else "" for n in names]
        lines.append(f"| {x:+.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def speed_ab_table(directory: Path = R / "v2" / "speed-ab") -> str:
    """Two loop benches run back to back on one machine: the model code before and after a change."""
    before, after = (json.loads((directory / f"{n}.json").read_text()) for n in ("before", "after"))
    keys = ["bare_env_step_ms", "policy_ms_per_action", "model_ms_per_action", "crop_ms", "processor_ms",
            "image_path_ms", "policy_over_bare", "model_over_bare", "loop_over_bare"]
    lines = ["| measure | before | after | after / before |", "|---|---:|---:|---:|"]
    for k in keys:
        lines.append(f"| `{k}` | {before[k]} | {after[k]} | {after[k] / before[k]:.3f} |")
    return "\n".join(lines) + "\n"


#: Every generated table: its file name under docs/results/_generated and what writes it.
MAKERS = {
    "drills.md": lambda: drills_table(R / "drills"),
    "drills_sets.md": lambda: sets_table(R / "drills"),
    "drills_robustness.md": robustness_table,
    "drills_matrix.md": matrix_table,
    "drills_matrix_signatures.md": matrix_signatures,
    "sweep.md": sweep_table,
    "first_close.md": first_close_summary,
    "tasks.md": tasks_table,
    "bench.md": bench_table,
    "bench_main.md": lambda: bench_table("bench_main.json"),
    "taxonomy.md": taxonomy_table,
    "drill_fixtures.md": fixtures_table,
    "agreement.md": agreement_table,
    "image_path.md": image_path_table,
    "suite.md": suite_table,
    "suite_failures.md": suite_failures,
    "v2_drills.md": lambda: drills_table(R / "v2" / "drills"),
    "v2_signatures.md": v1_v2_signatures,
    "v2_drills_matrix.md": lambda: matrix_table(R / "v2" / "drills-matrix"),
    "v2_round2.md": validation_table,
    "v2_round3.md": lambda: validation_table(R / "v2" / "round3"),
    "v2_round4.md": lambda: validation_table(R / "v2" / "round4"),
    "v2_round5.md": lambda: validation_table(R / "v2" / "round5"),
    "v2_round6.md": lambda: validation_table(R / "v2" / "round6"),
    "v2_round7.md": lambda: validation_table(R / "v2" / "round7"),
    "v2_round8.md": lambda: validation_table(R / "v2" / "round8"),
    "v2_round9.md": lambda: validation_table(R / "v2" / "round9"),
    "v2_round10_by_layout.md": validation_by_layout,
    "v2_round10.md": lambda: validation_table(R / "v2" / "round10"),
    "v2_round11.md": lambda: validation_table(R / "v2" / "round11"),
    "v2_round12.md": lambda: validation_table(R / "v2" / "round12"),
    "v2_round12_suite.md": lambda: candidate_suite(R / "v2" / "round12" / "suite-seed3"),
    "v2_round13.md": lambda: validation_table(R / "v2" / "round13"),
    "v2_round13_heights.md": grasp_heights_table,
    "v2_round13_cpu.md": lambda: validation_table(R / "v2" / "round13" / "cpu"),
    "v2_round14.md": lambda: validation_table(R / "v2" / "round14"),
    "v2_round14_cpu.md": lambda: validation_table(R / "v2" / "round14" / "cpu"),
    "v2_round14_suite.md": lambda: candidate_suite(R / "v2" / "round14" / "suite-finetuned"),
    "v2_round15.md": lambda: validation_table(R / "v2" / "round15"),
    "v2_layouts.md": layouts_table,
    "v2_arm_start.md": arm_start_table,
    "grasp_tolerance.md": grasp_tolerance_table,
    "grasp_window.md": grasp_window_table,
    "speed_ab.md": speed_ab_table,
}


def main(only: list[str] | None = None) -> None:
    """Write every table (or only the named ones, e.g. ``taxonomy.md``)."""
    OUT.mkdir(parents=True, exist_ok=True)
    for name, make in MAKERS.items():
        if only and name not in only:
            continue
        try:
            text = make()
        except FileNotFoundError as exc:
            text = f"*Not measured yet ({exc.filename} is missing): run `bash scripts/make_results.sh`.*\n"
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:] or None)
