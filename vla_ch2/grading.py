"""``vla-ch2 check``: grade an exercise file locally, test by test.

For the coding exercises (2.x.1, 2.x.2) the reader's file is loaded as a
module and the graded tests of :mod:`vla_ch2.exercise_tests` run against
it; for the written ones (2.x.3, 2.x.4) the free-text graders of
:mod:`vla_ch2.graders` score one point per box or per symptom. Either way
the report lists every test with PASS/FAIL, its points and, on failure, a
hint; then the total. The same results go to a Gradescope-style
``results.json``.

Exit status: 0 only for full marks, 1 otherwise, 2 when nothing could be
graded (an unknown exercise, a missing or unreadable file).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text

from vla_ch2.exercise_tests import CheckFailed, Context, GradedTest, GraderSetupError, Simulation, collect
from vla_ch2.exercise_tests import model_from_environment

#: Exercise id -> (title, default file, kind).
EXERCISES = {
    "2.x.1": ("failure drills", "exercises/failure_drills.py", "code"),
    "2.x.2": ("the 50-episode sweep", "exercises/sweep.py", "code"),
    "2.x.3": ("a one-page paper read", "exercises/worksheet.md", "worksheet"),
    "2.x.4": ("one sentence per failure", "exercises/sentences.txt", "sentences"),
}
#: Seconds one graded test may run before it is stopped (simulation tests, the others).
TIME_LIMIT = {True: 600, False: 60}

#: The chapter's three symptoms, used if the rubric cannot be asked for its labels.
_SYMPTOMS = {
    "scribbles": "moves in slow random scribbles near the start pose",
    "wrong_direction": "moves decisively in the wrong direction",
    "slams": "slams the arm toward joint limits",
}

_module_ids = itertools.count()


@dataclass
class TestResult:
    """One line of the report and one entry of ``results.json``."""

    name: str
    score: int
    max_score: int
    output: str = ""

    @property
    def passed(self) -> bool:
        return self.score == self.max_score

    def as_json(self) -> dict:
        return {"name": self.name, "score": self.score, "max_score": self.max_score, "output": self.output,
                "status": "passed" if self.passed else "failed"}


class InputError(Exception):
    """Nothing can be graded; the message says what, where and what to do."""


# --- Reading the reader's file ------------------------------------------------------------------


def _exercise_id(exercise: str) -> str:
    key = exercise.strip().lower().replace("x", ".x.").replace("..", ".").strip(".")
    key = key if key in EXERCISES else exercise.strip().lower()
    if key not in EXERCISES:
        raise InputError(f"unknown exercise {exercise!r}. Choose one of {', '.join(EXERCISES)}, "
                         "e.g. `vla-ch2 check 2.x.1 exercises/failure_drills.py`.")
    return key


def _resolve_file(exercise: str, file) -> Path:
    default = EXERCISES[exercise][1]
    path = Path(default if file is None else file)
    if not path.exists():
        raise InputError(f"{path}: no such file (looked in {Path.cwd()}). Run from the repository root, where "
                         f"{default} is, or pass your file: `vla-ch2 check {exercise} path/to/your_file`.")
    if path.is_dir():
        raise InputError(f"{path} is a directory. Pass the exercise file itself, e.g. "
                         f"`vla-ch2 check {exercise} {default}`.")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror or exc}). Make it readable (chmod u+r) "
                         "or copy it somewhere you can read, then check again.") from None
    return path


def _where(exc: BaseException, path: Path) -> str:
    """`` (line N of your file)`` for the deepest frame of ``exc`` inside the reader's file."""
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if Path(frame.f_code.co_filename) == path:
            line = lineno
    return f" (line {line} of {path.name})" if line is not None else ""


def load_reader(path: Path) -> tuple[types.ModuleType | None, str | None]:
    """Execute the reader's file as a fresh module; return ``(module, None)`` or ``(None, why)``.

    The file is compiled from its text (no ``__pycache__`` is written next to it).
    """
    path = path.resolve()
    name = f"_vla_ch2_reader_{path.stem}_{next(_module_ids)}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses and pickling look a module up by name
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
            exec(code, module.__dict__)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        return None, f"{path.name} does not compile: {exc.msg} (line {exc.lineno}); fix it, then check again"
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any import failure fails every test, cleanly
        sys.modules.pop(name, None)
        return None, f"importing {path.name} raised {type(exc).__name__}: {exc}{_where(exc, path)}"
    return module, None


# --- Running graded tests -----------------------------------------------------------------------


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
    return f"your code raised {type(exc).__name__}: {exc}{_where(exc, path)}"


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
    from vla_ch2.exercise_tests import ex_2x1, ex_2x2

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


# --- The written exercises ------------------------------------------------------------------------


def _symptom_labels() -> dict[str, str]:
    try:
        from vla_ch2.graders import load_rubric

        labels = {sid: s.label for sid, s in load_rubric("sentences").symptoms.items()}
        return labels or dict(_SYMPTOMS)
    except Exception:  # noqa: BLE001 - the chapter's wording is a fine fallback
        return dict(_SYMPTOMS)


def grade_text(kind: str, path: Path) -> tuple[list[TestResult], list[str]]:
    """Grade a worksheet (one test per box) or sentences (one per symptom); return results and notes."""
    from vla_ch2 import graders

    data = path.read_bytes()
    if kind == "worksheet":
        result = graders.grade_worksheet(data)
        tests = []
        for number, box in enumerate(result["boxes"], start=1):
            parts = []
            if not box.get("found", True):
                parts.append("no heading for this box was found")
            if box.get("missing"):
                parts.append("missing: " + "; ".join(box["missing"]))
            if box.get("feedback"):
                parts.append(box["feedback"])
            ok = bool(box["ok"])
            hint = ". ".join(part.strip().rstrip(".") for part in parts) + "." if parts else ""
            tests.append(TestResult(f"box {number}: {box['box']}", int(ok), 1, "" if ok else hint))
    else:
        result = graders.grade_sentences(data)
        tests = []
        for sid, label in _symptom_labels().items():
            mine = [s for s in result["sentences"] if s.get("symptom") == sid]
            ok = any(s["cause_ok"] and s["diagnostic_ok"] for s in mine)
            if ok:
                output = ""
            elif not mine:
                output = f"no sentence is about the robot that {label}"
            else:
                best = max(mine, key=lambda s: s["cause_ok"] + s["diagnostic_ok"])
                output = (f"cause {'ok' if best['cause_ok'] else 'not ok'}, diagnostic "
                          f"{'ok' if best['diagnostic_ok'] else 'not ok'}. {best.get('feedback', '')}").strip()
            tests.append(TestResult(f"sentence: the robot {label}", int(ok), 1, output))
    return tests, list(result.get("notes", []))


# --- Report and results.json -----------------------------------------------------------------------


def write_results(results: list[TestResult], path, notes: list[str] = ()) -> Path:
    """Write Gradescope's ``results.json`` atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "score": sum(r.score for r in results),
        "max_score": sum(r.max_score for r in results),
        "tests": [r.as_json() for r in results],
    }
    if notes:
        payload["output"] = "\n".join(notes)
    handle, partial = tempfile.mkstemp(prefix=path.name + ".", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(payload, out, indent=2)
            out.write("\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    return path


def report(results: list[TestResult], console, notes: list[str] = ()) -> None:
    """Print one line per test (PASS/FAIL, points, name), the hint under a failure, then the total."""
    width = max((len(r.name) for r in results), default=0)
    for r in results:
        status = ("PASS", "green") if r.passed else ("FAIL", "red")
        console.print(Text.assemble(status, "  ", r.name.ljust(width), f"  {r.score}/{r.max_score}"),
                      highlight=False, soft_wrap=True)
        if not r.passed and r.output:
            console.print(f"      {r.output}", markup=False, highlight=False, soft_wrap=True)
    for note in notes:
        console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    score, out_of = sum(r.score for r in results), sum(r.max_score for r in results)
    console.print(f"total: {score}/{out_of}", highlight=False, soft_wrap=True)


def run_check(exercise: str, file, results_path, console) -> int:
    """Grade ``file`` for ``exercise`` (``2.x.1`` ... ``2.x.4``); print the report; return the exit status.

    Parameters
    ----------
    exercise : str
        Exercise id, e.g. ``"2.x.1"``.
    file : path or None
        The reader's file; default: the exercise's file under ``exercises/`` of the current directory.
    results_path : path or None
        Where to write ``results.json`` (``None``: not written).
    console : rich.console.Console
        Where the report goes.

    Returns
    -------
    int
        0 for full marks, 1 otherwise, 2 when nothing could be graded.
    """
    try:
        exercise = _exercise_id(exercise)
        title, _, kind = EXERCISES[exercise]
        path = _resolve_file(exercise, file)
        console.print(f"Exercise {exercise}, {title}: {path}", markup=False, highlight=False, soft_wrap=True)
        started = time.perf_counter()
        if kind == "code":
            model = model_from_environment()
            if any(t.sim for t in code_tests(exercise)):
                console.print(f"simulation tests use {model or 'the embedded teaching model'} (VLA_CH2_MODEL "
                              "overrides)", markup=False, highlight=False, soft_wrap=True)
            results, notes = grade_code(exercise, path, model=model), []
        else:
            try:
                results, notes = grade_text(kind, path)
            except OSError as exc:
                raise InputError(f"{path}: cannot read it ({exc.strerror or exc})") from None
            except Exception as exc:  # noqa: BLE001 - a grader fault is not the reader's
                raise InputError(f"the {kind} grader failed on {path} ({type(exc).__name__}: {exc}); "
                                 "please report this with the file attached") from None
    except InputError as exc:
        console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    report(results, console, notes)
    if results_path is not None:
        written = write_results(results, results_path, notes)
        console.print(f"wrote {written} ({time.perf_counter() - started:.0f} s)", markup=False, highlight=False,
                      soft_wrap=True)
    score, out_of = sum(r.score for r in results), sum(r.max_score for r in results)
    return 0 if out_of > 0 and score == out_of else 1
