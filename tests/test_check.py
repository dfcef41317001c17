"""Meta-tests of ``vla-ch2 check``: the graders grade what they claim to.

As nbgrader's ``validate`` and ``validate --invert``: every starter file in
``exercises/`` fails every graded test, every worked solution in
``solutions/`` passes them all. Mutants of the solutions (one plausible
mistake each) prove that single tests can fail on their own, and the
command line's exit codes and ``results.json`` are checked through
``typer.testing.CliRunner``.

Simulation tests (``-m sim``) run LIBERO with the embedded teaching model,
or ``$VLA_CH2_MODEL``; while the embedded checkpoint has no weights yet, a
random-weight checkpoint in the same format is built for the session.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from vla_ch2.checking.command import code_tests, grade_code, run_check

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = REPO / "vla_ch2" / "checkpoints" / "teaching-vla-libero-object"

#: Exercise -> (starter file, worked solution, does grading run LIBERO).
FILES = {
    "2.x.1": ("exercises/failure_drills.py", "solutions/failure_drills.py", True),
    "2.x.2": ("exercises/sweep.py", "solutions/sweep.py", True),
    "2.x.3": ("exercises/worksheet.md", "solutions/worksheet.md", False),
    "2.x.4": ("exercises/sentences.txt", "solutions/sentences.txt", False),
}


def _need(*files: str) -> None:
    missing = [f for f in files if not (REPO / f).is_file()]
    if missing:
        pytest.skip(f"not written yet: {', '.join(missing)}")


# --- Fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sim_model(tmp_path_factory):
    """The checkpoint simulation tests use, exported as ``VLA_CH2_MODEL`` for the session."""
    if os.environ.get("VLA_CH2_MODEL"):
        yield os.environ["VLA_CH2_MODEL"]
        return
    if (DEFAULT_CHECKPOINT / "model.safetensors").is_file():
        yield None
        return
    tokenizers = [DEFAULT_CHECKPOINT / "tokenizer.json", REPO / "data" / "tokenizer.json"]
    tokenizer = next((t for t in tokenizers if t.is_file()), None)
    if tokenizer is None:
        pytest.skip("the embedded checkpoint has no weights yet and no tokenizer.json was found to build a "
                    "random one; set VLA_CH2_MODEL to a checkpoint directory")
    from vla_ch2.factory.teaching_model import make_random_checkpoint

    out = make_random_checkpoint(tmp_path_factory.mktemp("random-checkpoint"), tokenizer)
    os.environ["VLA_CH2_MODEL"] = str(out)
    try:
        yield str(out)
    finally:
        os.environ.pop("VLA_CH2_MODEL", None)


@dataclass
class Checked:
    code: int
    results: dict | None
    output: str


@pytest.fixture(scope="session")
def check(tmp_path_factory):
    """``check(exercise, file)`` -> :class:`Checked`, each pair graded once per session."""
    done: dict[tuple, Checked] = {}

    def run(exercise: str, file: str) -> Checked:
        if (exercise, file) not in done:
            results = tmp_path_factory.mktemp("check") / "results.json"
            console = Console(file=io.StringIO(), width=200)
            code = run_check(exercise, REPO / file, results, console)
            payload = json.loads(results.read_text(encoding="utf-8")) if results.is_file() else None
            done[exercise, file] = Checked(code, payload, console.file.getvalue())
        return done[exercise, file]

    return run


def _params(sim_marked: bool):
    for exercise, (_, _, sim) in FILES.items():
        yield pytest.param(exercise, marks=[pytest.mark.sim] if sim and sim_marked else [], id=exercise)


# --- Stubs fail everything, solutions pass everything ---------------------------------------------


@pytest.mark.parametrize("exercise", list(_params(sim_marked=False)))
def test_starter_file_fails_every_test(check, exercise):
    stub = FILES[exercise][0]
    _need(stub)
    checked = check(exercise, stub)
    assert checked.code == 1, checked.output
    tests = checked.results["tests"]
    assert tests and all(t["status"] == "failed" and t["score"] == 0 for t in tests), checked.output
    assert all(t["output"] for t in tests), "every failed test needs a hint"
    assert checked.results["score"] == 0
    if FILES[exercise][2]:  # code: the stub imports cleanly and each test meets a NotImplementedError
        assert all(t["output"].startswith("not implemented yet: ") for t in tests), checked.output
        assert "Traceback" not in checked.output


@pytest.mark.parametrize("exercise", list(_params(sim_marked=True)))
def test_solution_passes_every_test(check, sim_model, exercise):
    solution = FILES[exercise][1]
    _need(solution)
    checked = check(exercise, solution)
    assert checked.code == 0, checked.output
    assert all(t["status"] == "passed" for t in checked.results["tests"]), checked.output
    assert checked.results["score"] == checked.results["max_score"] > 0
    assert f"total: {checked.results['score']}/{checked.results['max_score']}" in checked.output


@pytest.mark.parametrize("exercise", ["2.x.1", "2.x.2"])
def test_solution_files_start_with_the_marker(exercise):
    solution = REPO / FILES[exercise][1]
    assert solution.read_text(encoding="utf-8").splitlines()[0] == "# SOLUTION"


def test_results_json_is_gradescope_shaped(check):
    checked = check("2.x.2", FILES["2.x.2"][0])
    payload = checked.results
    tests = code_tests("2.x.2")
    assert set(payload) >= {"score", "max_score", "tests"}
    assert payload["max_score"] == sum(t.points for t in tests)
    assert [t["name"] for t in payload["tests"]] == [t.name for t in tests]
    for entry, test in zip(payload["tests"], tests):
        assert set(entry) == {"name", "score", "max_score", "output", "status"}
        assert entry["max_score"] == test.points and entry["status"] in ("passed", "failed")
        assert f"FAIL  {test.name}" in checked.output
    assert payload["score"] == sum(t["score"] for t in payload["tests"])


# --- Each stated requirement has a mutant that breaks it, and check names the mistake -----------
#
# A mutant is the worked solution with one plausible mistake. For each, the graded tests that must
# fail (by function name) and a phrase the failure message must contain: the hint has to name
# the mistake, not only notice that something is off.

#: (exercise, what the mutant gets wrong, text replaced, replacement, {test: phrase in its hint})
MUTANTS = [
    # 2.x.1, the chapter's predicates as the chapter states them
    ("2.x.1", "max instead of mean", "arm_norms.mean() < threshold", "arm_norms.max() < threshold",
     {"bad_prompt_predicate": "mean arm norm over time is 0.045"}),
    ("2.x.1", "below or equal instead of below", "arm_norms.mean() < threshold", "arm_norms.mean() <= threshold",
     {"bad_prompt_predicate": "exactly 0.5, with threshold 0.5 (not below it)"}),
    ("2.x.1", "wrong default threshold", "def is_bad_prompt(run, threshold=0.05)", "def is_bad_prompt(run, threshold=0.5)",
     {"bad_prompt_predicate": "chapter's value as default", "no_flip_predicate": "calls your is_bad_prompt"}),
    ("2.x.1", "sign instead of magnitude", "too_large = np.abs(_actions(run)[:, :3]).max(axis=1)",
     "too_large = _actions(run)[:, :3].max(axis=1)", {"bad_unnorm_predicate": "z = -0.2"}),
    ("2.x.1", "rotations counted as translations", "too_large = np.abs(_actions(run)[:, :3]).max(axis=1)",
     "too_large = np.abs(_actions(run)[:, :6]).max(axis=1)", {"bad_unnorm_predicate": "large rotation"}),
    ("2.x.1", "at least a fraction instead of more than", "return bool(too_large.mean() > fraction)",
     "return bool(too_large.mean() >= fraction)", {"bad_unnorm_predicate": "exactly 10 of 100 steps"}),
    ("2.x.1", "is_bad_unnorm written from the evidence", "return bool(too_large.mean() > fraction)",
     "return bool(np.abs(_actions(run)[:, :3]).max() < translation)",
     {"bad_unnorm_predicate": "is_bad_unnorm(run)", "no_flip_predicate": "calls your is_bad_unnorm"}),
    ("2.x.1", "reward ignored", "and gripper_closes and never_rewarded", "and gripper_closes",
     {"no_flip_predicate": "reward 1.0 at its last step"}),
    ("2.x.1", "gripper ignored", "and gripper_closes and never_rewarded", "and never_rewarded",
     {"no_flip_predicate": "gripper never closes"}),
    # 2.x.1, the predicates relative to the baseline, judged on real drills
    ("2.x.1", "only a larger scale counts", "return bool(ratio > factor or ratio < 1.0 / factor)",
     "return bool(ratio > factor)",
     {"bad_unnorm_relative_on_real_drills": "returned False on the bad_unnorm drill",
      "no_flip_relative_on_real_drills": "returned True on the bad_unnorm drill",
      "relative_predicates_together": "no_flip fires; exactly one should: bad_unnorm"}),
    ("2.x.1", "mean instead of median for stillness", "    return _median_arm_norm(run) < stillness",
     "    return float(np.linalg.norm(_actions(run)[:, :6], axis=1).mean()) < stillness",
     {"bad_prompt_relative_on_real_drills": "bad_prompt drill of seed 0", "relative_predicates_together": "none of"}),
    ("2.x.1", "stillness without a rewarded baseline",
     "        return False\n    return _median_arm_norm(run) < stillness",
     "        return _median_arm_norm(run) < stillness and not _rewarded(run)\n    return _median_arm_norm(run) < stillness",
     {"bad_prompt_relative_on_real_drills": "fired on the baseline itself"}),
    ("2.x.1", "prompt and flip swapped", ("    return _median_arm_norm(run) < stillness",
                                          "    return _median_arm_norm(run) >= stillness"),
     ("    return _median_arm_norm(run) >= stillness", "    return _median_arm_norm(run) < stillness"),
     {"bad_prompt_relative_on_real_drills": "returned True on the no_flip drill",
      "no_flip_relative_on_real_drills": "returned False on the no_flip drill",
      "relative_predicates_together": "bad_prompt fires; exactly one should: no_flip"}),
    ("2.x.1", "no_flip does not ask for motion", "    return _median_arm_norm(run) >= stillness",
     "    return True", {"no_flip_relative_on_real_drills": "bad_prompt drill of seed 0",
                        "relative_predicates_together": "bad_prompt and no_flip fire"}),
    ("2.x.1", "norm of the mean action, not the mean of the norms",
     "    arm_norms = np.linalg.norm(_actions(run)[:, :6], axis=1)",
     "    arm_norms = np.linalg.norm(_actions(run)[:, :6].mean(axis=0))",
     {"bad_prompt_predicate": "forward and back on alternate steps"}),
    ("2.x.1", "a translation at the limit counted as too large", "max(axis=1) > translation",
     "max(axis=1) >= translation", {"bad_unnorm_predicate": "y = 0.1 on every step"}),
    ("2.x.1", "another translation limit by default", "def is_bad_unnorm(run, translation=0.1,",
     "def is_bad_unnorm(run, translation=0.2,", {"bad_unnorm_predicate": "`translation`"}),
    ("2.x.1", "another fraction by default", "translation=0.1, fraction=0.1)", "translation=0.1, fraction=0.2)",
     {"bad_unnorm_predicate": "`fraction`"}),
    ("2.x.1", "any positive gripper value counted as a close", "(_actions(run)[:, 6] > 0.5)",
     "(_actions(run)[:, 6] > 0)", {"no_flip_predicate": "gripper reads 0.4"}),
    ("2.x.1", "only the last reward looked at", "not bool((run[\"reward\"] > 0).any())",
     "not bool(run[\"reward\"].iloc[-1] > 0)", {"no_flip_predicate": "reward 1.0 at step 30 only"}),
    # 2.x.2
    ("2.x.2", "0 for never", "            return step\n    return None", "            return step\n    return 0",
     {"first_close": "never"}),
    ("2.x.2", "0.5 counted as a close", "if action[6] > 0.5:", "if action[6] >= 0.5:",
     {"first_close": "first_close_step returned 1 for actions whose gripper reads 0.5"}),
    ("2.x.2", "n - 1 in the denominator", "p * (1.0 - p) / episodes", "p * (1.0 - p) / (episodes - 1)",
     {"standard_error_values": "standard_error(44, 50)"}),
    ("2.x.2", "no guard for zero episodes", "if episodes <= 0:", "if episodes < 0:",
     {"standard_error_needs_episodes": "should raise ValueError"}),
    ("2.x.2", "a count, not a rate", "if row[\"success\"]) / len(rows)", "if row[\"success\"])",
     {"success_rate_values": "success_rate returned"}),
    ("2.x.2", "saved somewhere else", "fig.savefig(out_png, format=\"png\"", "fig.savefig(out_png.with_suffix(\".svg\")",
     {"plot_is_written": "wrote nothing at out_png"}),
]

#: The loop of 2.x.1 (simulation tests): (what the mutant gets wrong, old, new, {test: phrase})
ALL_DRILLS = ("baseline", "no_flip", "bad_prompt", "bad_unnorm")
SIM_MUTANTS = [
    ("stops early on success", "        yield step_record(step, image, action, reward, tag)",
     "        yield step_record(step, image, action, reward, tag)\n        if done:\n            break",
     {"never_stops_on_success": "stopped after 4 policy steps when the simulator reported done=True"}),
    ("too few wait steps", "range(C.NUM_WAIT_STEPS)", "range(C.NUM_WAIT_STEPS - 5)",
     {f"{d}_matches_the_chapters_loop": "first waits 10 steps" for d in ALL_DRILLS}),
    ("generators not seeded", "    seed_everything(seed)\n", "",
     {f"{d}_matches_the_chapters_loop": "not seeded from seed=3" for d in ALL_DRILLS}),
    ("always the first initial state", "obs = task.reset(init_index=seed)", "obs = task.reset(init_index=0)",
     {f"{d}_matches_the_chapters_loop": "task.reset(init_index=0); with seed=3" for d in ALL_DRILLS}),
    ("flip toggle ignored", "C.prepare_image(task.frame(obs), flip_image)", "C.prepare_image(task.frame(obs), True)",
     {"no_flip_matches_the_chapters_loop": "your image is rotated although flip_image=False"}),
    ("flip toggle inverted", "C.prepare_image(task.frame(obs), flip_image)",
     "C.prepare_image(task.frame(obs), not flip_image)",
     {"baseline_matches_the_chapters_loop": "your image is not rotated although flip_image=True",
      "bad_prompt_matches_the_chapters_loop": "your image is not rotated although flip_image=True",
      "bad_unnorm_matches_the_chapters_loop": "your image is not rotated although flip_image=True",
      "no_flip_matches_the_chapters_loop": "your image is rotated although flip_image=False"}),
    ("raw frame to the policy", "C.prepare_image(task.frame(obs), flip_image)", "task.frame(obs)",
     {f"{d}_matches_the_chapters_loop": "neither the flipped nor the unflipped frame" for d in ALL_DRILLS}),
    ("prompt toggle ignored", "Toggles(prompt_template=prompt_template).prompt(task.language)",
     "Toggles().prompt(task.language)", {"bad_prompt_matches_the_chapters_loop": "the prompt is the canonical template"}),
    ("instruction not lower-cased", "Toggles(prompt_template=prompt_template).prompt(task.language)",
     "C.PROMPT_TEMPLATES[prompt_template].format(instruction=task.language)",
     {f"{d}_matches_the_chapters_loop": "not lower-cased" for d in ALL_DRILLS}),
    ("statistics key toggle ignored", "key = unnorm_key or task.suite", "key = task.suite",
     {"bad_unnorm_matches_the_chapters_loop": "resolves to 'libero_object_no_noops', not 'bridge_orig'"}),
    ("gripper not post-processed", "action = C.postprocess_gripper(policy.predict(image, prompt, key))",
     "action = policy.predict(image, prompt, key)",
     {f"{d}_matches_the_chapters_loop": "C.postprocess_gripper" for d in ALL_DRILLS}),
    ("two policy calls per step", "action = C.postprocess_gripper(policy.predict(image, prompt, key))",
     "policy.predict(image, prompt, key)\n        action = C.postprocess_gripper(policy.predict(image, prompt, key))",
     {"records_have_the_five_fields": "ask it once per step",
      **{f"{d}_matches_the_chapters_loop": "asked the policy again before stepping" for d in ALL_DRILLS}}),
    ("the model's raw action logged", ("action = C.postprocess_gripper(policy.predict(image, prompt, key))",
                                       "yield step_record(step, image, action, reward, tag)"),
     ("raw = policy.predict(image, prompt, key)\n        action = C.postprocess_gripper(raw)",
      "yield step_record(step, image, raw, reward, tag)"),
     {f"{d}_matches_the_chapters_loop": "the logged action is not the action sent to the simulator"
      for d in ALL_DRILLS}),
    ("steps counted from 1", "yield step_record(step, image, action, reward, tag)",
     "yield step_record(step + 1, image, action, reward, tag)",
     {"records_have_the_five_fields": "steps count 0, 1, 2",
      **{f"{d}_matches_the_chapters_loop": "step or tag is not the one the loop should log" for d in ALL_DRILLS}}),
    ("img_mean of the next frame", "yield step_record(step, image, action, reward, tag)",
     "yield step_record(step, task.frame(obs), action, reward, tag)",
     {f"{d}_matches_the_chapters_loop": "img_mean is not the mean of the image the policy saw" for d in ALL_DRILLS}),
    ("tag hard-coded", "yield step_record(step, image, action, reward, tag)",
     "yield step_record(step, image, action, reward, \"baseline\")",
     {"records_have_the_five_fields": "although the test passed tag='probe'",
      **{f"{d}_matches_the_chapters_loop": "step or tag is not the one the loop should log"
         for d in ALL_DRILLS if d != "baseline"}}),
    ("wait with the gripper closed", "task.step(C.WAIT_ACTION)", "task.step((0.0,) * 6 + (1.0,))",
     {f"{d}_matches_the_chapters_loop": "wait step 0: the action sent is not C.WAIT_ACTION" for d in ALL_DRILLS}),
    ("records not rounded", "yield step_record(step, image, action, reward, tag)",
     "yield {\"step\": step, \"img_mean\": float(image.mean()), \"action\": [float(a) for a in action], "
     "\"reward\": float(reward), \"tag\": tag}",
     {"records_have_the_five_fields": "not rounded to 4 decimals",
      **{f"{d}_matches_the_chapters_loop": "rounded as step_record does" for d in ALL_DRILLS}}),
]


def _mutate(tmp_path: Path, exercise: str, old, new) -> Path:
    """The solution with ``old`` replaced by ``new``, or each of a tuple of texts by its counterpart (at once)."""
    source = (REPO / FILES[exercise][1]).read_text(encoding="utf-8")
    olds, news = (old, new) if isinstance(old, tuple) else ((old,), (new,))
    marks = [f"\0{i}\0" for i in range(len(olds))]
    for before, mark in zip(olds, marks):
        assert source.count(before) == 1, f"mutant text {before!r} must occur exactly once in {FILES[exercise][1]}"
        source = source.replace(before, mark)
    for mark, after in zip(marks, news):
        source = source.replace(mark, after)
    path = tmp_path / Path(FILES[exercise][1]).name
    path.write_text(source, encoding="utf-8")
    return path


def _failed(results, exercise: str) -> dict[str, str]:
    names = {t.name: t.func.__name__ for t in code_tests(exercise)}
    return {names[r.name]: r.output for r in results if not r.passed}


def _assert_named(failed: dict[str, str], expected: dict[str, str]) -> None:
    assert set(failed) == set(expected), failed
    for test, phrase in expected.items():
        assert phrase in failed[test], (test, failed[test])
        assert "Traceback" not in failed[test]


@pytest.mark.parametrize("exercise,mistake,old,new,expected", MUTANTS, ids=[m[1] for m in MUTANTS])
def test_a_mistake_fails_its_own_test(tmp_path, exercise, mistake, old, new, expected):
    path = _mutate(tmp_path, exercise, old, new)
    _assert_named(_failed(grade_code(exercise, path, select=lambda t: not t.sim), exercise), expected)


def test_hints_do_not_give_the_answer_away(tmp_path):
    path = _mutate(tmp_path, "2.x.2", "p * (1.0 - p) / episodes", "p * (1.0 - p) / (episodes - 1)")
    (result,) = [r for r in grade_code("2.x.2", path, select=lambda t: not t.sim) if not r.passed]
    assert "standard_error(44, 50)" in result.output
    correct = (0.88 * 0.12 / 50) ** 0.5  # 0.045956...
    assert f"{correct:.5f}" not in result.output and f"{correct:.4g}" not in result.output


@pytest.mark.sim
@pytest.mark.parametrize("mistake,old,new,expected", SIM_MUTANTS, ids=[m[0] for m in SIM_MUTANTS])
def test_a_loop_mistake_fails_with_a_hint_naming_it(tmp_path, sim_model, mistake, old, new, expected):
    path = _mutate(tmp_path, "2.x.1", old, new)
    results = grade_code("2.x.1", path, select=lambda t: t.sim, model=sim_model)
    assert len(results) == len([t for t in code_tests("2.x.1") if t.sim])
    _assert_named(_failed(results, "2.x.1"), expected)


#: The sweep of 2.x.2 (its simulation test: episode 0 scripted to close at step 3 and succeed at step 6,
#: episode 1 the model as it is): (what the mutant gets wrong, old, new, phrase in sweep_rows's message)
SWEEP_SIM_MUTANTS = [
    ("success never recorded", "success=bool(result.success)", "success=False",
     {"sweep_rows": "row 0: success=False"}),
    ("every episode a success", "success=bool(result.success)", "success=True", {"sweep_rows": "row 1: success=True"}),
    ("no final reward", "final_reward=float(result.final_reward)", "final_reward=0.0",
     {"sweep_rows": "row 0: final_reward=0.0 is not the episode's last reward"}),
    ("steps taken as the limit", "steps=int(result.steps)", "steps=int(max_steps or result.steps)",
     {"sweep_rows": "row 0: steps=10 but the episode took 6 policy steps"}),
    ("first close never computed", "first_close_step=first_close_step(actions)", "first_close_step=None",
     {"sweep_rows": "row 0: first_close_step=None does not match"}),
    ("seeds from 1", "for seed in range(episodes):", "for seed in range(1, episodes + 1):",
     {"sweep_rows": "initial states [1, 2]"}),
    ("does not stop at success", "max_steps=max_steps, tag=", "max_steps=max_steps, stop_on_success=False, tag=",
     {"sweep_rows": "went on for 4 steps after the simulator reported the task done"}),
]


@pytest.mark.sim
@pytest.mark.parametrize("mistake,old,new,expected", SWEEP_SIM_MUTANTS, ids=[m[0] for m in SWEEP_SIM_MUTANTS])
def test_a_sweep_mistake_fails_with_a_message_naming_it(tmp_path, sim_model, mistake, old, new, expected):
    path = _mutate(tmp_path, "2.x.2", old, new)
    results = grade_code("2.x.2", path, select=lambda t: t.sim, model=sim_model)
    assert len(results) == len([t for t in code_tests("2.x.2") if t.sim])
    _assert_named(_failed(results, "2.x.2"), expected)


def test_every_graded_test_has_a_mutant():
    """Each graded test of 2.x.1 and 2.x.2 is failed by at least one mutant."""
    covered = {test for *_, expected in MUTANTS for test in expected}
    covered |= {test for *_, expected in SIM_MUTANTS + SWEEP_SIM_MUTANTS for test in expected}
    tests = {t.func.__name__ for ex in ("2.x.1", "2.x.2") for t in code_tests(ex)}
    assert tests - covered == set(), tests - covered


def test_reader_exceptions_are_reported_per_test(tmp_path):
    source = (REPO / FILES["2.x.1"][1]).read_text(encoding="utf-8")
    broken = source.replace("    arm_norms = np.linalg", "    1 / 0\n    arm_norms = np.linalg")
    path = tmp_path / "failure_drills.py"
    path.write_text(broken, encoding="utf-8")
    results = {r.name: r for r in grade_code("2.x.1", path, select=lambda t: not t.sim)}
    failed = [r for r in results.values() if not r.passed]
    line = broken.splitlines().index("    1 / 0") + 1
    assert len(failed) == 2  # is_bad_prompt, and is_no_flip which calls it
    for r in failed:
        assert r.output.startswith("your code raised ZeroDivisionError: division by zero")
        assert f"line {line} of failure_drills.py" in r.output


# --- The command line ---------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path, monkeypatch):
    from vla_ch2.cli import app

    monkeypatch.chdir(REPO)
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, ["check", *args, "--results", str(tmp_path / "results.json")])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result

    return invoke


def test_cli_full_marks_exit_0(cli, tmp_path):
    _need(FILES["2.x.4"][1])
    result = cli("2.x.4", FILES["2.x.4"][1])
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert payload["score"] == payload["max_score"] == 3
    assert "total: 3/3" in result.output and result.output.count("PASS") == 3


def test_cli_missing_marks_exit_1(cli, tmp_path):
    _need(FILES["2.x.3"][0])
    result = cli("2.x.3", FILES["2.x.3"][0])
    assert result.exit_code == 1, result.output
    payload = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert payload["max_score"] == 6 and payload["score"] < 6
    assert "total: " in result.output and "FAIL" in result.output


def test_cli_default_file_is_the_starter(cli):
    result = cli("2.x.2")
    assert result.exit_code == 1, result.output
    assert "exercises/sweep.py" in result.output and "not implemented yet" in result.output


@pytest.mark.parametrize("exercise", ["2.x.9", "3.x.1", "drills"])
def test_cli_unknown_exercise_exit_2(cli, tmp_path, exercise):
    result = cli(exercise, "exercises/sweep.py")
    assert result.exit_code == 2, result.output
    assert "unknown exercise" in result.output and "2.x.1" in result.output
    assert not (tmp_path / "results.json").exists()


def test_cli_missing_file_exit_2(cli, tmp_path):
    result = cli("2.x.1", "no/such/failure_drills.py")
    assert result.exit_code == 2, result.output
    assert "no/such/failure_drills.py" in result.output and "no such file" in result.output
    assert "Traceback" not in result.output


def test_cli_directory_exit_2(cli):
    result = cli("2.x.4", "exercises")
    assert result.exit_code == 2, result.output
    assert "directory" in result.output


@pytest.mark.parametrize("source,message", [
    ("def failure_drills(:\n    pass\n", "does not compile"),
    ("import vla_ch2_no_such_module\n", "ModuleNotFoundError"),
    ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
])
def test_cli_broken_file_fails_every_test_without_traceback(cli, tmp_path, source, message):
    path = tmp_path / "failure_drills.py"
    path.write_text(source, encoding="utf-8")
    result = cli("2.x.1", str(path))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    payload = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert len(payload["tests"]) == len(code_tests("2.x.1")) and payload["score"] == 0
    assert all(message in t["output"] for t in payload["tests"]), payload["tests"][0]["output"]


def test_cli_leaves_no_partial_results_file(cli, tmp_path):
    cli("2.x.2", FILES["2.x.2"][0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
