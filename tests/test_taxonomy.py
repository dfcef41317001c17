"""The failure taxonomy is one source of truth, and its measured layer is read from the committed runs.

Nothing in ``vla_ch2/data/drills_measured.json``, the grading fixtures of 2.x.1
or the generated tables is typed in: each is recomputed here from the drill
logs under ``docs/results/drills-matrix`` and compared.
"""

from __future__ import annotations

import gzip
import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vla_ch2 import conventions as C
from vla_ch2 import predicates
from vla_ch2 import taxonomy as T

REPO = Path(__file__).resolve().parents[1]
MATRIX = REPO / "docs" / "results" / "drills-matrix"


def test_the_measured_layer_is_what_the_committed_drills_say(script):
    committed = json.loads((REPO / "vla_ch2" / "data" / T.MEASURED_FILE).read_text(encoding="utf-8"))
    matrices = script("drills_summary").DEFAULT_ROOTS  # each teaching model's committed drills matrix
    assert set(committed["models"]) == set(matrices)
    for name, root in matrices.items():
        assert T.summarise(REPO / root, source=root) == committed["models"][name], name


def test_the_grading_fixtures_are_the_committed_drills(tmp_path, monkeypatch, script):
    module = script("drill_fixtures")
    monkeypatch.setattr(module, "OUT", tmp_path / "drills.jsonl.gz")
    module.main()
    committed = REPO / "vla_ch2" / "checking" / "fixtures" / "drills.jsonl.gz"
    assert gzip.decompress((tmp_path / "drills.jsonl.gz").read_bytes()) == gzip.decompress(committed.read_bytes())


@pytest.mark.parametrize("name", ["taxonomy.md", "drill_fixtures.md", "agreement.md", "image_path.md", "v2_round2.md",
                                  "v2_round3.md", "v2_round4.md", "v2_round5.md", "v2_round6.md", "v2_round7.md", "v2_round8.md",
                                  "v2_round9.md", "v2_round10_by_layout.md", "v2_round10.md", "v2_round11.md", "v2_round12.md", "v2_round12_suite.md", "v2_round13.md",
                                  "v2_round13_heights.md", "v2_round13_cpu.md", "v2_round14.md", "v2_round14_cpu.md", "v2_round14_suite.md", "v2_round15.md", "v2_layouts.md", "v2_arm_start.md",
                                  "grasp_tolerance.md",
                                  "grasp_window.md"])
def test_the_generated_tables_are_current(name, monkeypatch, script):
    monkeypatch.chdir(REPO)
    make = script("results_tables").MAKERS[name]
    committed = (REPO / "docs" / "results" / "_generated" / name).read_text(encoding="utf-8")
    assert make() == committed, f"run `python scripts/results_tables.py {name}`"


def test_the_closing_height_table_says_lower_or_higher_and_where_the_hand_closed(tmp_path, script):
    """Negative heights read "lower"; each cell gives the heights the hand really closed at, an unclosed try none."""
    def row(height, success, close):
        return json.dumps({"task": 1, "object": "cream_cheese_1", "height": height, "success": success,
                           "close_hand_minus_object": close})
    path = tmp_path / "heights.jsonl"
    path.write_text("\n".join([row(-0.006, True, [0.0, 0.0, 0.004]), row(-0.006, False, [0.0, 0.0, 0.006]),
                               row(0.0, True, [0.0, 0.0, 0.011]), row(0.003, False, None)]) + "\n")
    table = script("results_tables").grasp_heights_table(path)
    assert "| 0.6 cm lower | 1/2 (closed 0.4 to 0.6 cm up) |" in table
    assert "| at its usual height | 1/1 (closed 1.1 to 1.1 cm up) |" in table
    assert "| 0.3 cm higher | 0/1 |" in table
    assert table.index("lower") < table.index("usual") < table.index("higher")


def test_a_validation_table_marks_a_task_a_candidate_was_not_run_on(tmp_path, script):
    """A candidate run on some tasks only reads "-" elsewhere, not 0/0, and its total counts what it ran."""
    rows = [{"model": m, "task": t, "k": 0, "success": s} for m, t, s in
            (("A", 1, True), ("A", 6, False), ("B", 1, True), ("B", 2, True), ("B", 6, True))]
    (tmp_path / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "candidates.json").write_text(json.dumps([{"model": m, "name": m, "data": "d", "training": "t"}
                                                          for m in "AB"]))
    table = script("results_tables").validation_table(tmp_path)
    assert "| A | d | t | 1/1 | - | 0/1 | **1/2** (50.0 % +- 35.4) |" in table
    assert "| B | d | t | 1/1 | 1/1 | 1/1 | **3/3**" in table


def test_a_candidate_suite_table_comes_from_a_finished_run_only(tmp_path, monkeypatch, script):
    """The candidate-beside-v2 table refuses a run that does not cover the whole protocol, and says why."""
    monkeypatch.chdir(REPO)
    s = json.loads((REPO / "docs" / "results" / "v2" / "round12" / "suite-seed3" / "suite.json").read_text())
    s.update(whole_suite=False, episodes=100, tasks=s["tasks"][:2])
    (tmp_path / "suite.json").write_text(json.dumps(s))
    with pytest.raises(ValueError, match="100 of 500 episodes"):
        script("results_tables").candidate_suite(tmp_path)


def test_the_validation_table_counts_episodes_and_names_a_candidate_without_any(tmp_path, script):
    module = script("results_tables")
    rows = [{"model": "a", "task": t, "k": k, "success": k < t + 1} for t in (0, 1) for k in range(4)]
    (tmp_path / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "candidates.json").write_text(json.dumps([{"model": "a", "name": "A", "data": "d", "training": "t"}]))
    table = module.validation_table(tmp_path)
    assert "| A | d | t | 1/4 | 2/4 | **3/8** (37.5 % +- 17.1) |" in table
    (tmp_path / "candidates.json").write_text(json.dumps([{"model": "b", "name": "B", "data": "d", "training": "t"}]))
    with pytest.raises(ValueError, match="no validation episodes of b"):
        module.validation_table(tmp_path)


def test_the_chapters_cause_is_always_credited_and_measured_ones_are_added():
    facts = T.measured()
    measured_any = False
    for symptom in T.SYMPTOMS:
        credited = T.credited_causes(symptom, facts)
        chapter = [cid for cid, claim in T.CHAPTER.items() if claim.symptom == symptom]
        assert all("chapter" in credited[cid] for cid in chapter)
        for cid in T.CAUSES:  # every cause, so one the drills showed cannot be left out unseen
            shown = any(f.share(cid, symptom) >= T.MIN_SHARE for _, f in facts.models)
            assert ("measured" in credited.get(cid, ())) == shown == facts.credits(cid, symptom), (symptom, cid)
            measured_any = measured_any or shown
    assert measured_any, "the drills credited no cause at all: the comparison above checked nothing"
    with pytest.raises(KeyError, match="unknown symptom"):
        T.credited_causes("wobbles")


def test_what_the_drills_measured_contradicts_the_chapter_where_the_site_says_it_does():
    models = dict(T.measured().models)
    for name, f in models.items():  # the mechanism, on either model: Bridge statistics shrink, never enlarge
        assert f.symptoms["unnorm"].get("slams", 0) == 0 and f.share("unnorm", "scribbles") == 1.0, name
    facts = models["v1"]
    assert facts.seeds == 50
    assert facts.symptoms["unnorm"].get("slams", 0) == 0 and facts.share("unnorm", "scribbles") == 1.0
    assert facts.scale_ratio["unnorm"][1] < 1 / T.SCALE_FACTOR  # shrunk on every seed, not enlarged
    assert facts.share("flip", "wrong_direction") == 1.0
    assert facts.share("prompt", "wrong_direction") > 0.5  # the rephrased prompt mostly drives


def _run(actions, rewards=None) -> pd.DataFrame:
    actions = np.asarray(actions, dtype=float)
    rewards = np.zeros(len(actions)) if rewards is None else np.asarray(rewards, dtype=float)
    return pd.DataFrame({"action": [list(a) for a in actions], "reward": rewards})


def test_symptom_of_reads_scale_stillness_and_reward_against_the_baseline():
    n = 40
    baseline = np.zeros((n, 7))
    baseline[:10, 0] = 0.9
    moving = np.full((n, 7), 0.3)
    assert T.symptom_of(_run(baseline * 0.04), _run(baseline)) == "scribbles"  # another scale, smaller
    assert T.symptom_of(_run(np.clip(baseline * 5, -5, 5)), _run(baseline)) == "slams"  # another scale, larger
    still = baseline.copy()
    still[10:, :6] = 0.001
    assert T.symptom_of(_run(still), _run(baseline)) == "scribbles"
    moving[:, 0] = 0.9
    assert T.symptom_of(_run(moving), _run(baseline)) == "wrong_direction"
    assert T.symptom_of(_run(moving, rewards=[0] * (n - 1) + [1]), _run(baseline)) is None


def test_the_mechanism_is_computed_from_the_statistics():
    m = T.mechanism()
    q01, q99 = np.array(C.BRIDGE_ORIG_ACTION_STATS["q01"]), np.array(C.BRIDGE_ORIG_ACTION_STATS["q99"])
    l01, l99 = (np.array(C.OPENVLA_LIBERO_OBJECT_ACTION_STATS[k]) for k in ("q01", "q99"))
    assert np.allclose(m["range_ratio"], ((q99 - q01) / (l99 - l01))[:6])
    assert 0.03 < m["translation_ratio"] < 0.05  # about 24 times smaller
    # A text token decodes to the top bin: the un-normalised value sits just below q99.
    assert np.allclose(m["top_bin_suite"], (l01 + 0.5 * (C.BIN_CENTERS[-1] + 1) * (l99 - l01))[:6])
    for cause in T.CAUSES:
        assert T.mechanism_summary(cause)


def test_the_predicates_take_their_thresholds_from_the_taxonomy():
    def default(func, name):
        return inspect.signature(func).parameters[name].default

    assert default(predicates.bad_prompt_literal, "threshold") == T.CHAPTER_STILLNESS
    assert default(predicates.bad_unnorm_literal, "translation") == T.CHAPTER_TRANSLATION
    assert default(predicates.bad_unnorm_literal, "fraction") == T.CHAPTER_FRACTION
    assert default(predicates.bad_unnorm_calibrated, "factor") == T.SCALE_FACTOR
    assert default(predicates.bad_prompt_calibrated, "stillness") == T.STILLNESS


def test_the_summary_script_refuses_a_folder_without_drills(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "drills_summary.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no seed-* drill directories" in done.stderr and "Traceback" not in done.stderr


def test_the_grasp_window_counts_aims_from_the_usual_aim_of_their_time(tmp_path, script):
    module = script("results_tables")

    def row(radius, angle, success, k=0, **extra):
        return {"task": 1, "radius": radius, "height": 0.0, "early": 0.0, "k": k, "angle_deg": angle,
                "success": success, "object": "cream_cheese_1", "grasp_xy": [-0.01, 0.0], **extra}

    rows = [row(0.0, 0.0, True), row(0.0, 180.0, True), row(0.01, 0.0, False), row(0.01, 0.0, True, k=1),
            row(0.01, 180.0, True)]
    path = tmp_path / "window.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = module.grasp_window_table([path])
    # 1 cm towards +x from an aim of -1 cm is the box's origin; the aim of radius 0 counts once.
    assert "| -1.0 | 1/1 |" in table and "| +0.0 | 1/2 |" in table and "| -2.0 | 1/1 |" in table
    path.write_text(json.dumps(row(0.01, 90.0, True)) + "\n")
    with pytest.raises(ValueError, match="aimed off world x .*angle 90.0"):
        module.grasp_window_table([path])


def test_the_expert_aims_at_the_middle_of_where_its_grasps_hold(script):
    """GRASP_XY's aims come from the measured windows (docs/results/v2/round*/grasp_window_task*.jsonl).

    Every object whose range was measured closed on both sides must be aimed within half a centimetre of its
    middle (the measurements step by 0.5 or 1 cm); an object with no entry in GRASP_XY is aimed at its origin.
    """
    from vla_ch2.factory.expert import GRASP_XY

    module = script("results_tables")
    grasped = module.grasp_window([REPO / path for path in module.WINDOW_FILES])
    checked = []
    for name in sorted({n for n, _ in grasped}):
        outcomes = {x: tally for (n, x), tally in grasped.items() if n == name}
        always = sorted(x for x, (successes, episodes) in outcomes.items() if successes == episodes)
        low, high = always[0], always[-1]
        assert all(s == e for x, (s, e) in outcomes.items() if low <= x <= high), f"{name}: the graspable range has a hole"
        if not (min(outcomes) < low and max(outcomes) > high):
            continue  # still grasped at the widest aim measured: the range's middle is not known
        aim = 100 * GRASP_XY.get(name, (0.0, 0.0))[0]
        assert abs(aim - (low + high) / 2) <= 0.5, f"{name}: aimed at {aim} cm, the range is {low} to {high} cm"
        checked.append(name)
    assert {"cream_cheese", "tomato_sauce", "bbq_sauce", "salad_dressing"} <= set(checked), checked
