"""The ``vla-ch2`` command line: one command per step of the chapter's exercises.

``episode`` runs the loop once, ``drills`` the four runs of Exercise 2.x.1,
``predicates verify`` checks the three diagnostic predicates on them,
``sweep``/``merge``/``plot`` are Exercise 2.x.2, and ``check`` grades any of the
four exercises (code, worksheet or sentences) test by test.

User mistakes (a bad flag value, a missing file, an unknown statistics key)
end with a one-paragraph error and exit status 2, never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n\n")[0])
predicates_app = typer.Typer(no_args_is_help=True, help="Run the three diagnostic predicates on drill logs.")
app.add_typer(predicates_app, name="predicates")
console = Console()
err = Console(stderr=True)

MODEL_HELP = "checkpoint: a directory, a hub id, or 'teaching-vla-libero-object' (default, the embedded CPU model)"


def user_errors(func):
    """Turn the errors a user can cause into a clear message and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from vla_ch2.env import SimulatorUnavailable
        from vla_ch2.policy import ModelLoadError

        try:
            return func(*args, **kwargs)
        except (ValueError, KeyError, FileNotFoundError, ModelLoadError, SimulatorUnavailable, AssertionError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            err.print(f"[bold red]error:[/] {message}")
            raise typer.Exit(2) from None

    return wrapper


class LineProgress:
    """Progress as plain lines, for output that goes to a file or a pipe (a live bar would print nothing).

    The same calls as :class:`rich.progress.Progress`; a line whenever a task
    reaches another tenth of its total, or its description changes.
    """

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tasks: dict[int, dict] = {}
        self.started = time.monotonic()

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def add_task(self, description: str, total: float | None = None, completed: float = 0) -> int:
        task_id = len(self.tasks)
        self.tasks[task_id] = {"description": description, "total": total, "completed": completed, "shown": -1}
        self._show(task_id, force=True)
        return task_id

    def update(self, task_id: int, advance: float = 0, completed: float | None = None,
               description: str | None = None, **_) -> None:
        task = self.tasks[task_id]
        changed = description is not None and description != task["description"]
        task["completed"] = completed if completed is not None else task["completed"] + advance
        task["description"] = description or task["description"]
        self._show(task_id, force=changed)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def _show(self, task_id: int, force: bool = False) -> None:
        task = self.tasks[task_id]
        total = task["total"] or 0
        tenth = int(10 * task["completed"] / total) if total else 0
        if not force and tenth == task["shown"]:
            return
        task["shown"] = tenth
        elapsed = int(time.monotonic() - self.started)
        done = f"{task['completed']:g}/{total:g}" if total else f"{task['completed']:g}"
        print(f"{task['description']}: {done} ({elapsed // 60}:{elapsed % 60:02d})", file=self.stream, flush=True)


def _progress():
    """A live progress bar on a terminal, plain lines when the output goes to a file or a pipe."""
    if not err.is_terminal:
        return LineProgress()
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=err, transient=False)


DEVICE_HELP = "cuda:0 or cpu (default: a CUDA GPU when there is one); cpu also loads a large checkpoint on a CPU"


def _policy(model: Optional[str], trust_remote_code: bool, device: Optional[str] = None):
    import torch

    from vla_ch2.policy import load_policy

    if not torch.cuda.is_available():
        torch.set_num_threads(1)  # a small model on a CPU: threads cost more than they give
    with err.status(f"loading {model or 'the teaching model'}"):
        return load_policy(model, trust_remote_code=True if trust_remote_code else None, device=device)


@app.command()
@user_errors
def episode(
    out: Path = typer.Option(..., "--out", help="step log to write (.jsonl)"),
    suite: str = typer.Option("libero_object", help="LIBERO suite"),
    task: int = typer.Option(0, help="task index in the suite"),
    seed: int = typer.Option(0, help="episode seed: official initial state seed mod 50"),
    steps: Optional[int] = typer.Option(None, help="policy steps after the wait (default: the suite's limit)"),
    no_flip: bool = typer.Option(False, "--no-flip", help="skip the 180-degree rotation (the no_flip drill)"),
    prompt: str = typer.Option("canonical", help="prompt template: canonical or rephrased"),
    unnorm_key: Optional[str] = typer.Option(None, help="statistics key (default: the suite's own)"),
    model: Optional[str] = typer.Option(None, help=MODEL_HELP),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="allow a hub checkpoint's own code"),
    device: Optional[str] = typer.Option(None, help=DEVICE_HELP),
    tag: str = typer.Option("baseline", help="tag written into every log line"),
):
    """Run one episode of the OpenVLA-on-LIBERO loop and log every step."""
    from vla_ch2.env import LiberoTask, quiet_robosuite
    from vla_ch2.logs import StepLogWriter
    from vla_ch2.loop import EpisodeResult, run_episode
    from vla_ch2.toggles import Toggles

    toggles = Toggles(flip_image=not no_flip, prompt_template=prompt, unnorm_key=unnorm_key)
    if steps is not None and steps <= 0:
        raise ValueError(f"--steps must be a positive number of policy steps, got {steps}")
    quiet_robosuite()
    policy = _policy(model, trust_remote_code, device)
    policy.resolve_key(toggles.key_for(suite))  # fail before the simulator starts
    result = EpisodeResult(seed=seed)
    partial = out.with_name(out.name + ".partial")
    with LiberoTask(suite, task) as env, StepLogWriter(partial) as writer, _progress() as bar:
        total = steps or env.max_steps
        job = bar.add_task(f"{suite} task {task} seed {seed}", total=total)
        for record in run_episode(env, policy, toggles, seed=seed, max_steps=total, tag=tag, result=result):
            writer.write(record)
            bar.advance(job)
    partial.replace(out)
    outcome = "success" if result.success else "no success"
    console.print(f"{outcome} after {result.steps} steps ({result.wall_s:.1f} s); log: {out}")


@app.command()
@user_errors
def drills(
    out: Path = typer.Option(Path("drills"), "--out", help="directory for the four logs"),
    model: Optional[str] = typer.Option(None, help=MODEL_HELP),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code"),
    device: Optional[str] = typer.Option(None, help=DEVICE_HELP),
    seed: int = typer.Option(0, help="initial state and generator seed"),
    steps: int = typer.Option(500, help="policy steps per run (no early stop)"),
    suite: str = typer.Option("libero_object"),
    task: int = typer.Option(0),
    force: bool = typer.Option(False, "--force", help="redo runs that are already complete"),
    videos: Optional[Path] = typer.Option(None, help="also save one animated WebP clip per run into this directory"),
    workers: int = typer.Option(1, help="processes running the four runs (each loads its own simulator and model)"),
):
    """Exercise 2.x.1: baseline, no_flip, bad_prompt, bad_unnorm, then the verdict table."""
    from vla_ch2.drills import DrillSettings, run_drills
    from vla_ch2.env import quiet_robosuite
    from vla_ch2.policy import DEFAULT_MODEL_NAME, resolve_model
    from vla_ch2.toggles import DRILLS

    if steps <= 0:
        raise ValueError(f"--steps must be positive, got {steps}")
    if workers <= 0:
        raise ValueError(f"--workers must be positive, got {workers}")
    quiet_robosuite()
    if workers > 1:
        if not Path(resolve_model(model)).is_dir():
            raise ValueError(f"--model {model!r}: parallel drills load local checkpoints only; download it first "
                             "or use --workers 1")
        policy = None  # each worker loads its own
    else:
        policy = _policy(model, trust_remote_code, device)
    settings = DrillSettings(model=model or DEFAULT_MODEL_NAME, suite=suite, task=task, seed=seed, steps=steps)
    load_kwargs = {"trust_remote_code": True if trust_remote_code else None, "device": device}
    with _progress() as bar:
        jobs = {tag: bar.add_task(tag, total=steps) for tag in DRILLS}
        run_drills(out, policy, settings, force=force, video_dir=videos, workers=workers, load_kwargs=load_kwargs,
                   progress=lambda tag, step, total: bar.update(jobs[tag], completed=step))
    verify(out, mode="auto", steps=None, as_json=False, exit_on_result=False)


@predicates_app.command("verify")
@user_errors
def verify(
    directory: Path = typer.Argument(..., help="a drills directory (baseline/no_flip/bad_prompt/bad_unnorm .jsonl)"),
    mode: str = typer.Option("auto", help="auto, literal (the chapter's thresholds), calibrated (relative to the "
                             "baseline) or instrumented (image layout and token probability too)"),
    steps: Optional[int] = typer.Option(None, help="judge only the first STEPS steps of each run"),
    as_json: bool = typer.Option(False, "--json", help="print the report as one JSON object"),
    exit_on_result: bool = typer.Option(True, hidden=True),
):
    """Which predicates fire on each run; exit 0 only if each failure fires exactly its own."""
    from vla_ch2.predicates import verify_directory

    report = verify_directory(directory, mode=mode, steps=steps)
    if as_json:
        print(json.dumps(report, indent=2))
        if exit_on_result and not report["ok"]:
            raise typer.Exit(1)
        return
    judged = f", first {steps} steps" if steps else ""
    table = Table(title=f"predicates ({report['mode']}) on {directory}{judged}")
    table.add_column("run")
    for name in report["predicates"]:
        table.add_column(name)
    table.add_column("expected")
    table.add_column("ok")
    for tag, row in report["runs"].items():
        table.add_row(tag, *["fires" if row["fired"][p] else "-" for p in report["predicates"]],
                      row["expected"] or "none", "yes" if row["ok"] else "[red]NO[/]")
    console.print(table)
    for line in report["notes"]:
        console.print(f"- {line}")
    console.print("verdict: " + ("[green]each run fires exactly its own predicate[/]" if report["ok"]
                                 else "[red]the predicates do not separate the runs[/]"))
    if exit_on_result and not report["ok"]:
        raise typer.Exit(1)


@predicates_app.command("show")
@user_errors
def show(directory: Path = typer.Argument(..., help="a drills directory")):
    """Print the per-run signatures (mean |action[:6]|, max |action[:3]|, gripper closes, reward)."""
    from vla_ch2.predicates import load_runs, signature

    runs = load_runs(directory)
    rows = {tag: signature(df) for tag, df in runs.items()}
    console.print_json(json.dumps(rows))


@app.command()
@user_errors
def sweep(
    out: Path = typer.Option(..., "--out", help="sweep directory (resumable)"),
    suite: str = typer.Option("libero_object"),
    task: int = typer.Option(0, help="the task to sweep (see --tasks for several)"),
    tasks: Optional[str] = typer.Option(None, help="several tasks: 'all', a range like 0-9 or a list like 0,2,7 "
                                                   "(run in increasing order, whatever order is given); "
                                                   "each goes to OUT/task-T, then a per-task table and the suite "
                                                   "average go to OUT/suite.json"),
    episodes: int = typer.Option(50, help="seeds 0..episodes-1 (per task)"),
    workers: int = typer.Option(1, help="parallel processes, each with its own simulator and model"),
    shard: str = typer.Option("0/1", help="K/N: run only seeds with seed mod N == K"),
    steps: Optional[int] = typer.Option(None, help="cap policy steps per episode (default: the suite's limit)"),
    model: Optional[str] = typer.Option(None, help=MODEL_HELP),
):
    """Exercise 2.x.2: success rate over many episodes, with its standard error (one task, or several)."""
    from vla_ch2.env import suite_names
    from vla_ch2.policy import DEFAULT_MODEL_NAME, resolve_model
    from vla_ch2.sweep import TASK_DIR, SweepSettings, parse_tasks, read_episodes, run_sweep, suite_summary

    try:
        index, count = (int(x) for x in shard.split("/"))
        assert 0 <= index < count
    except (ValueError, AssertionError):
        raise ValueError(f"--shard must look like K/N with 0 <= K < N, got {shard!r}") from None
    if episodes <= 0 or workers <= 0 or (steps is not None and steps <= 0):
        raise ValueError("--episodes, --workers and --steps must be positive")
    if suite not in suite_names():
        raise ValueError(f"unknown suite {suite!r}; choose one of {suite_names()}")
    if not Path(resolve_model(model)).is_dir():
        raise ValueError(f"--model {model!r}: the sweep's workers load local checkpoints only; download it first")
    from vla_ch2.conventions import N_TASKS

    todo = parse_tasks(tasks, N_TASKS[suite]) if tasks is not None else [task]
    name = model or DEFAULT_MODEL_NAME
    mine = [s for s in range(episodes) if s % count == index]
    for t in todo:
        directory = out / TASK_DIR.format(task=t) if tasks is not None else out
        settings = SweepSettings(model=name, suite=suite, task=t, max_steps=steps)
        already = len([r for r in read_episodes(directory) if r["seed"] in set(mine)]) if directory.exists() else 0
        with _progress() as bar:
            job = bar.add_task(f"task {t} episodes", total=len(mine), completed=already)

            def progress(row, rows, job=job, t=t):
                wins = sum(r["success"] for r in rows)
                errors = sum(1 for r in rows if r.get("error"))
                bar.update(job, advance=1, description=f"task {t} episodes (success {wins}/{len(rows)}"
                                                       + (f", {errors} errored)" if errors else ")"))
                if row.get("error"):
                    err.print(f"episode {row['seed']} raised an error, counted as a failure: {row['error']}")

            summary = run_sweep(directory, settings, episodes=episodes, workers=workers, shard=(index, count),
                                progress=progress)
        console.print(f"task {t}: success rate {100 * summary['success_rate']:.1f} % +- "
                      f"{100 * summary['standard_error']:.1f} over {summary['episodes']} episodes")
        if summary.get("errored"):
            err.print(f"[bold yellow]{summary['errored']} episode(s) raised an error and count as failures[/] (seeds "
                      f"{', '.join(map(str, summary['errored_seeds']))}; the error is in each one's line of "
                      f"{directory / 'episodes.jsonl'})")
        if tasks is None:
            console.print(summary["verdict"])
    if tasks is not None and count == 1:
        total = suite_summary(out, todo, name, suite)
        table = Table("task", "episodes", "success rate", "standard error")
        for row in total["tasks"]:
            table.add_row(str(row["task"]), str(row["episodes"]), f"{100 * row['success_rate']:.1f} %",
                          f"{100 * row['standard_error']:.1f}")
        console.print(table)
        console.print(f"{suite}, {len(todo)} tasks: {100 * total['success_rate']:.1f} % +- "
                      f"{100 * total['standard_error']:.1f} over {total['episodes']} episodes. {total['verdict']}")
        if total["published"]:
            like = "the same protocol" if total["whole_suite"] else "the whole suite (10 tasks x 50), which this is not"
            console.print(f"Published suite averages on {like}: " + "; ".join(
                f"{p['policy']} {100 * p['success_rate']:.1f} +- {100 * p['standard_error']:.1f}"
                for p in total["published"]) + f" ({total['published'][0]['source']})")


@app.command()
@user_errors
def merge(
    sources: list[Path] = typer.Argument(..., help="shard directories"),
    out: Path = typer.Option(..., "--out", help="merged sweep directory"),
):
    """Merge shard directories of one sweep (a cluster's job array) and summarise."""
    from vla_ch2.sweep import merge as merge_dirs

    summary = merge_dirs(sources, out)
    console.print(f"{summary['episodes']} episodes; {summary['verdict']}")


@app.command()
@user_errors
def plot(
    directory: Path = typer.Argument(..., help="a sweep directory"),
    out: Path = typer.Option(Path("first_close.png"), "--out", help="PNG path; an SVG is written beside it"),
):
    """The first-close histogram of a sweep, coloured by outcome."""
    from vla_ch2.plots import first_close_histogram
    from vla_ch2.sweep import read_episodes

    rows = read_episodes(directory)
    paths = first_close_histogram(rows, out)
    console.print("wrote " + ", ".join(map(str, paths)))


@app.command()
def check(
    exercise: str = typer.Argument(..., help="2.x.1, 2.x.2, 2.x.3 or 2.x.4"),
    file: Optional[str] = typer.Argument(None, help="your file (default: the exercise's file in exercises/; "
                                                    "'-' reads a written answer from standard input)"),
    results: Optional[Path] = typer.Option(Path("results.json"), "--results",
                                           help="where to write the Gradescope-style results file"),
    no_results: bool = typer.Option(False, "--no-results", help="do not write a results file"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of the report"),
    rubric: Optional[Path] = typer.Option(None, "--rubric", help="a rubric JSON to use instead of the packaged "
                                                                 "one (2.x.3 and 2.x.4; for instructors)"),
):
    """Check an exercise: every test with PASS/FAIL and its points, a total, results.json, exit 0 only for full marks.

    2.x.1 and 2.x.2 run graded tests against your Python file (the simulation
    tests run LIBERO for a few steps); 2.x.3 grades your worksheet box by box
    and 2.x.4 your three sentences symptom by symptom. Exit status: 0 for full
    marks, 1 otherwise, 2 when nothing could be graded (unknown exercise,
    missing or unreadable file, broken rubric).
    """
    from vla_ch2.checking.command import run_check

    code = run_check(exercise, file, None if no_results else results, console, as_json=as_json,
                     rubric=None if rubric is None else str(rubric))
    raise typer.Exit(code)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
