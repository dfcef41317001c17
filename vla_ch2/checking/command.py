"""``vla-ch2 check``: grade one exercise file, test by test, the same way for all four exercises.

For the coding exercises (2.x.1, 2.x.2) the reader's file is loaded as a
module (:mod:`~vla_ch2.checking.inputs`) and the graded tests of
:mod:`~vla_ch2.checking.ex_2x1` or :mod:`~vla_ch2.checking.ex_2x2` run
against it; for the written ones (2.x.3, 2.x.4) the free-text graders
(:mod:`~vla_ch2.checking.worksheet`, :mod:`~vla_ch2.checking.sentences`)
score one point per box or per symptom. Either way the result is one
list of :class:`~vla_ch2.checking.report.TestResult`: every test with
PASS/FAIL, its points and, on failure, a hint; then the total; the same in
``results.json``.

Exit status: 0 only for full marks, 1 otherwise, 2 when nothing could be
graded (an unknown exercise, a missing or unreadable file, a broken rubric).
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console

from vla_ch2.checking.harness import CheckFailed, Context, GradedTest, GraderSetupError, Simulation, collect
from vla_ch2.checking.harness import model_from_environment
from vla_ch2.checking.inputs import InputError, load_reader, read_answer, resolve_file, where_in
from vla_ch2.checking.report import TestResult, exit_status, report, write_results
from vla_ch2.checking.rubrics import RubricError

#: Exercise id -> (title, default file, kind).
EXERCISES = {
    "2.x.1": ("failure drills", "exercises/failure_drills.py", "code"),
    "2.x.2": ("the 50-episode sweep", "exercises/sweep.py", "code"),
    "2.x.3": ("a one-page paper read", "exercises/worksheet.md", "worksheet"),
    "2.x.4": ("one sentence per failure", "exercises/sentences.txt", "sentences"),
}
#: Seconds one graded test may run before it is stopped (simulation tests, the others).
TIME_LIMIT = {True: 600, False: 60}


def exercise_id(exercise: str) -> str:
    """``"2.x.1"`` for any common spelling (``2x1``, ``2.X.1``); an :class:`InputError` for an unknown one."""
    key = exercise.strip().lower().replace("x", ".x.").replace("..", ".").strip(".")
    key = key if key in EXERCISES else exercise.strip().lower()
    if key not in EXERCISES:
        raise InputError(f"unknown exercise {exercise!r}. Choose one of {', '.join(EXERCISES)}, "
                         "e.g. `vla-ch2 check 2.x.1 exercises/failure_drills.py`.")
    return key


# --- The coding exercises: graded tests against the reader's module -----------------------------


@contextlib.contextmanager
def _time_limit(seconds: int):
    """Stop the test with a failure after ``seconds`` (main thread on Unix only; elsewhere no limit)."""
    usable = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise CheckFailed(f"stopped after {seconds} s; the test takes a few seconds, so look for a loop "
                          "that does not end")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _one_torch_thread(active: bool):
    """Run the policy on one CPU thread during simulation tests.

    The teaching model is small: one thread is fastest, and unlike several it
    does not slow to a crawl (OpenMP threads waiting on each other) when other
    processes keep the cores busy. Both the reader's run and the reference run
    use the same setting, so their actions stay comparable.
    """
    torch = sys.modules.get("torch") if active else None
    if active and torch is None:
        import torch
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _hint(exc: BaseException, path: Path) -> str:
    """What a reader sees for a failed test: never a traceback, never the reference answer."""
    if isinstance(exc, CheckFailed):
        return str(exc)
    if isinstance(exc, GraderSetupError):
        return f"the grader could not run this test: {exc}"
    if isinstance(exc, NotImplementedError):
        return f"not implemented yet: {exc}" if str(exc) else "not implemented yet"
    return f"your code raised {type(exc).__name__}: {exc}{where_in(exc, path)}"


def run_tests(tests: list[GradedTest], module, path: Path, load_error: str | None = None,
              model: str | None = None) -> list[TestResult]:
    """Run each test against the reader's module; an exception fails that test only."""
    if load_error is not None:
        return [TestResult(t.name, 0, t.points, load_error) for t in tests]
    sim = Simulation(model)
    results = []
    with tempfile.TemporaryDirectory(prefix="vla-ch2-check-") as scratch:
        for number, test in enumerate(tests):
            folder = Path(scratch) / f"test-{number}"
            folder.mkdir()
            ctx = Context(module=module, path=path.resolve(), sim=sim, scratch=folder)
            printed = io.StringIO()
            try:
                with _time_limit(TIME_LIMIT[test.sim]), _one_torch_thread(test.sim), \
                        contextlib.redirect_stdout(printed):
                    test.func(ctx)
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported as this test's failure
                hint = _hint(exc, ctx.path)
                shown = printed.getvalue().strip().splitlines()[-3:]
                if shown:
                    hint += " | your code printed: " + " / ".join(line.strip()[:120] for line in shown)
                results.append(TestResult(test.name, 0, test.points, hint))
            else:
                results.append(TestResult(test.name, test.points, test.points))
    return results


def code_tests(exercise: str) -> list[GradedTest]:
    """The graded tests of a coding exercise."""
    from vla_ch2.checking import ex_2x1, ex_2x2

    return collect({"2.x.1": ex_2x1, "2.x.2": ex_2x2}[exercise])


def grade_code(exercise: str, path: Path, select=None, model: str | None = None) -> list[TestResult]:
    """Grade a coding exercise file; ``select(test)`` may keep only some tests (for the meta-tests)."""
    tests = [t for t in code_tests(exercise) if select is None or select(t)]
    module, error = load_reader(path)
    try:
        return run_tests(tests, module, path, error, model=model)
    finally:
        if module is not None:
            sys.modules.pop(module.__name__, None)


# --- The written exercises: one test per box or per symptom --------------------------------------


def grade_text(kind: str, data: bytes, rubric=None) -> tuple[list[TestResult], list[str]]:
    """Grade a worksheet (one test per box) or sentences (one per symptom); return results and notes."""
    if kind == "worksheet":
        from vla_ch2.checking.worksheet import grade_worksheet, worksheet_results

        return worksheet_results(grade_worksheet(data, rubric=rubric))
    from vla_ch2.checking.sentences import grade_sentences, sentence_results

    return sentence_results(grade_sentences(data, rubric=rubric))


# --- The command ----------------------------------------------------------------------------------


def run_check(exercise: str, file, results_path, console, as_json: bool = False, rubric=None, errors=None) -> int:
    """Grade ``file`` for ``exercise`` (``2.x.1`` ... ``2.x.4``); print the report; return the exit status.

    Parameters
    ----------
    exercise : str
        Exercise id, e.g. ``"2.x.1"``.
    file : path or None
        The reader's file (``-``: standard input, written exercises only); default: the
        exercise's file under ``exercises/`` of the current directory.
    results_path : path or None
        Where to write ``results.json`` (``None``: not written).
    console : rich.console.Console
        Where the report goes.
    as_json : bool
        Print the results as one JSON object instead of the report.
    rubric : path or None
        A rubric file to use instead of the packaged one (written exercises only; for instructors).
    errors : rich.console.Console or None
        Where an error goes (default: standard error); with ``as_json`` it is printed as JSON on ``console``.

    Returns
    -------
    int
        0 for full marks, 1 otherwise, 2 when nothing could be graded.
    """
    def say(text: str) -> None:
        if not as_json:
            console.print(text, markup=False, highlight=False, soft_wrap=True)

    try:
        exercise = exercise_id(exercise)
        title, default, kind = EXERCISES[exercise]
        if rubric is not None and kind == "code":
            raise InputError(f"--rubric applies to the written exercises (2.x.3, 2.x.4), not to {exercise}")
        if kind != "code" and str(file) == "-":
            path, data = Path("-"), read_answer("-", default)
        else:
            path = resolve_file(exercise, file, default)
            data = None if kind == "code" else read_answer(str(path), default)
        say(f"Exercise {exercise}, {title}: {path}")
        started = time.perf_counter()
        if kind == "code":
            model = model_from_environment()
            if any(t.sim for t in code_tests(exercise)):
                say(f"simulation tests use {model or 'the embedded teaching model'} (VLA_CH2_MODEL overrides)")
            results, notes = grade_code(exercise, path, model=model), []
        else:
            try:
                results, notes = grade_text(kind, data, rubric)
            except RubricError as exc:
                raise InputError(f"the rubric cannot be used: {exc}. Fix the file, or drop --rubric to use the "
                                 "packaged one.") from None
            except Exception as exc:  # noqa: BLE001 - a grader fault is not the reader's
                raise InputError(f"the {kind} grader failed on {path} ({type(exc).__name__}: {exc}); "
                                 "please report this with the file attached") from None
    except InputError as exc:
        if as_json:
            console.print(json.dumps({"error": str(exc), "exit_code": 2}), markup=False, highlight=False,
                          soft_wrap=True)
        else:
            (errors or Console(stderr=True)).print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    status = exit_status(results)
    written = write_results(results, results_path, notes) if results_path is not None else None
    if as_json:
        payload = {"exercise": exercise, "file": str(path), "score": sum(r.score for r in results),
                   "max_score": sum(r.max_score for r in results), "tests": [r.as_json() for r in results],
                   "notes": list(notes), "results_json": str(written) if written else None, "exit_code": status}
        console.print(json.dumps(payload), markup=False, highlight=False, soft_wrap=True)
        return status
    report(results, console, notes)
    if written is not None:
        say(f"wrote {written} ({time.perf_counter() - started:.0f} s)")
    return status
