"""Tests for the offline free-text graders of Exercises 2.x.3 and 2.x.4 (vla_ch2.checking)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vla_ch2.checking import sentences as sentences_module
from vla_ch2.checking import worksheet as worksheet_module
from vla_ch2.checking.inputs import MAX_CHARS, normalise
from vla_ch2.checking.rubrics import RubricError, load_rubric
from vla_ch2.checking.sentences import MAX_SENTENCES, grade_sentences, split_sentences
from vla_ch2.checking.worksheet import grade_worksheet
from vla_ch2.cli import app

ROOT = Path(__file__).resolve().parents[1]
SENTENCE_KEYS = {"text", "symptom", "cause", "cause_ok", "diagnostic_ok", "authority", "feedback"}
BOX_KEYS = {"box", "found", "matched", "missing", "ok", "feedback"}
SYMPTOMS = ("scribbles", "wrong_direction", "slams")

SCRIBBLES = ("If the robot is moving in slow random scribbles near the start pose, the most likely cause is the prompt "
             "template, and the diagnostic is that the mean norm of action[:6] stays below 0.05.")
WRONG_DIRECTION = ("If the robot moves decisively in the wrong direction, the most likely cause is the missing [::-1] image "
                   "flip, and the diagnostic is by elimination: healthy action magnitudes and a cycling gripper, but reward "
                   "never rises above 0.")
SLAMS = ("If the robot slams the arm toward joint limits, the most likely cause is the wrong unnorm_key (Bridge "
         "statistics), and the diagnostic is that max abs of action[:3] exceeds 0.1.")
CORRECT = "\n".join([SCRIBBLES, WRONG_DIRECTION, SLAMS])


def one(sentence: str) -> dict:
    """Grade a single sentence and return its entry."""
    result = grade_sentences(sentence)
    assert len(result["sentences"]) == 1, result
    return result["sentences"][0]


def assert_sentence_shape(result: dict) -> None:
    assert {"sentences", "score", "out_of"} <= set(result)
    assert result["out_of"] == 3
    for entry in result["sentences"]:
        assert set(entry) == SENTENCE_KEYS
        assert entry["symptom"] in SYMPTOMS + (None,)
        assert isinstance(entry["cause_ok"], bool) and isinstance(entry["diagnostic_ok"], bool)
        assert isinstance(entry["text"], str) and isinstance(entry["feedback"], str) and entry["feedback"]
    credited = {e["symptom"] for e in result["sentences"] if e["symptom"] and e["cause_ok"] and e["diagnostic_ok"]}
    assert result["score"] == len(credited)


# ---------------------------------------------------------------------------
# Exercise 2.x.4: reference answer and stub
# ---------------------------------------------------------------------------


def test_solution_scores_full_marks():
    text = (ROOT / "solutions" / "sentences.txt").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "# SOLUTION"
    result = grade_sentences(text)
    assert_sentence_shape(result)
    assert result["score"] == 3
    assert [s["symptom"] for s in result["sentences"]] == list(SYMPTOMS)


def test_stub_scores_zero_and_says_the_slots_are_empty():
    result = grade_sentences((ROOT / "exercises" / "sentences.txt").read_bytes())
    assert_sentence_shape(result)
    assert result["score"] == 0
    assert len(result["sentences"]) == 3
    for entry in result["sentences"]:
        assert entry["symptom"] is None
        assert "empty" in entry["feedback"]


def test_result_has_exactly_the_documented_keys():
    result = grade_sentences(CORRECT)
    assert_sentence_shape(result)
    assert set(result) == {"sentences", "score", "out_of", "notes"}
    assert result["score"] == 3
    assert result["sentences"][0]["text"] == SCRIBBLES


# ---------------------------------------------------------------------------
# Symptoms: paraphrases
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phrase", "symptom"),
    [
        ("moves in slow random scribbles near the start pose", "scribbles"),
        ("twitches in place", "scribbles"),
        ("wanders aimlessly around its home position", "scribbles"),
        ("jitters near the initial pose and barely moves", "scribbles"),
        ("makes small random motions close to the starting configuration", "scribbles"),
        ("moves decisively in the wrong direction", "wrong_direction"),
        ("heads confidently the wrong way", "wrong_direction"),
        ("moves with purpose but away from the target", "wrong_direction"),
        ("goes in the opposite direction", "wrong_direction"),
        ("slams the arm toward joint limits", "slams"),
        ("lunges violently to the edge of its range", "slams"),
        ("crashes into its joint limits", "slams"),
        ("makes huge jerky motions", "slams"),
    ],
)
def test_symptom_paraphrases_are_recognised(phrase, symptom):
    entry = one(f"If the robot {phrase}, the most likely cause is something, and the diagnostic is something.")
    assert entry["symptom"] == symptom


def test_unrecognisable_symptom_is_none_with_a_hint():
    entry = one("If the robot dances a tango, the most likely cause is the prompt, and the diagnostic is the norm near zero.")
    assert entry["symptom"] is None
    assert not entry["cause_ok"] and not entry["diagnostic_ok"]
    assert "symptom" in entry["feedback"].lower()


# ---------------------------------------------------------------------------
# Causes and diagnostics: right, partly wrong, swapped, negated
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("sentence", [SCRIBBLES, WRONG_DIRECTION, SLAMS])
def test_each_correct_sentence_gets_its_point(sentence):
    result = grade_sentences(sentence)
    assert result["score"] == 1
    entry = result["sentences"][0]
    assert entry["cause_ok"] and entry["diagnostic_ok"]
    assert "Cause: correct" in entry["feedback"]


def test_a_cause_neither_the_chapter_nor_the_drills_give_is_caught():
    from vla_ch2.taxonomy import credited_causes

    assert "flip" not in credited_causes("slams")  # neither §2.4 nor the drills of either model pair them
    entry = one("If the robot slams the arm toward joint limits, the most likely cause is the image flip, "
                "and the diagnostic is that the healthy magnitudes never earn a reward.")
    assert entry["symptom"] == "slams" and entry["cause"] == "flip"
    assert not entry["cause_ok"]
    assert entry["diagnostic_ok"]  # it is the flip's diagnostic, only the pairing is wrong
    assert "does not produce this symptom, neither in §2.4 nor in the measured drills" in entry["feedback"]


def test_a_diagnostic_of_another_cause_is_caught():
    entry = one("If the robot slams the arm toward joint limits, the most likely cause is the wrong unnorm key, "
                "and the diagnostic is that the norm of action[:6] stays near zero.")
    assert entry["cause_ok"]
    assert not entry["diagnostic_ok"]
    assert "is the signature of another cause, not of the one you named" in entry["feedback"]


def test_measured_pairings_with_the_chapters_diagnostics_of_the_same_cause_score():
    """Bridge statistics for the scribbles and the prompt for the wrong direction are what the drills measure."""
    text = "\n".join([
        "If the robot moves in slow random scribbles near the start pose, the most likely cause is the wrong unnorm key, "
        "and the diagnostic is that action[:3] exceeds 0.1.",
        "If the robot moves decisively in the wrong direction, the most likely cause is the prompt template, "
        "and the diagnostic is that the mean norm of action[:6] is below 0.05.",
        "If the robot slams the arm toward joint limits, the most likely cause is the missing image flip, "
        "and the diagnostic is that reward never rises although the actions look healthy.",
    ])
    result = grade_sentences(text)
    assert [s["symptom"] for s in result["sentences"]] == list(SYMPTOMS)
    assert [s["cause_ok"] for s in result["sentences"]] == [True, True, False]
    assert all(s["diagnostic_ok"] for s in result["sentences"])  # each diagnostic belongs to the cause named
    assert result["score"] == 2
    assert [s["authority"] for s in result["sentences"]][:2] == [["measured"], ["measured"]]


def test_partly_wrong_cause_right_diagnostic_missing():
    entry = one("If the robot slams the arm toward joint limits, the most likely cause is the wrong unnorm key, "
                "and the diagnostic is to look at it carefully.")
    assert entry["cause_ok"] and not entry["diagnostic_ok"]
    assert "Diagnostic: none found" in entry["feedback"]


def test_incomplete_diagnostic_names_what_kind_of_thing_is_missing():
    entry = one("If the robot moves in slow random scribbles near the start pose, the most likely cause is the prompt, "
                "and the diagnostic is the norm of the actions.")
    assert entry["cause_ok"] and not entry["diagnostic_ok"]
    assert "incomplete" in entry["feedback"]


@pytest.mark.parametrize(
    ("cause", "ok"),
    [
        ("not the unnorm key but the prompt template", True),
        ("the prompt template, not the unnorm key", True),
        ("the prompt rather than the unnorm key", True),
        ("it is not the prompt", False),
        ("not the prompt template", False),
        ("nothing to do with the prompt", False),
        ("the unnorm key, rather than the prompt", False),
        ("anything other than the prompt", False),
    ],
)
def test_negated_causes_do_not_count(cause, ok):
    from vla_ch2.taxonomy import credited_causes

    assert "unnorm" not in credited_causes("wrong_direction") and "prompt" in credited_causes("wrong_direction")
    entry = one(f"If the robot moves decisively in the wrong direction, the most likely cause is {cause}, "
                "and the diagnostic is that the mean norm of action[:6] is below 0.05.")
    assert entry["symptom"] == "wrong_direction"
    assert entry["cause_ok"] is ok


def test_negated_only_cause_gets_negation_feedback():
    entry = one("If the robot slams the arm toward joint limits, it is not the unnorm key, and the diagnostic is that "
                "action[:3] exceeds 0.1.")
    assert not entry["cause_ok"]
    assert "negated" in entry["feedback"]


def test_a_cause_ruled_out_afterwards_does_not_count():
    entry = one("If the robot moves decisively in the wrong direction, the most likely cause is the unnorm key; "
                "the prompt is fine, and the diagnostic is that the mean norm of action[:6] is below 0.05.")
    assert entry["cause"] == "unnorm" and not entry["cause_ok"]
    assert "does not produce this symptom" in entry["feedback"]


@pytest.mark.parametrize(
    "cause",
    [
        "that the image was not flipped",
        "no flip",
        "that the loop did not apply [::-1]",
        "the upside-down camera image",
        "forgetting to rotate the image by 180 degrees",
    ],
)
def test_describing_the_missing_flip_with_not_still_counts(cause):
    entry = one(f"If the robot moves decisively in the wrong direction, the most likely cause is {cause}, and the "
                "diagnostic is that done never goes True although the gripper cycles normally.")
    assert entry["cause_ok"], entry["feedback"]
    assert entry["diagnostic_ok"], entry["feedback"]


def test_cause_without_a_cause_marker_is_found_anywhere():
    entry = one("If the robot slams the arm toward joint limits, check that action[:3] exceeds 0.1; it is the unnorm key.")
    assert entry["cause_ok"] and entry["diagnostic_ok"], entry["feedback"]


def test_two_causes_at_once_are_not_accepted():
    entry = one("If the robot slams the arm toward joint limits, the most likely cause is the unnorm key or the prompt, "
                "and the diagnostic is that action[:3] exceeds 0.1.")
    assert not entry["cause_ok"]
    assert "more than one cause" in entry["feedback"]


def test_misconception_cause_gets_its_feedback():
    entry = one("If the robot moves in slow random scribbles near the start pose, the most likely cause is a bfloat16 "
                "dtype mismatch, and the diagnostic is that the mean norm of action[:6] is below 0.05.")
    assert not entry["cause_ok"]
    assert "Exercise 2.x.2" in entry["feedback"]


def test_img_mean_diagnostic_gets_a_note():
    entry = one("If the robot moves decisively in the wrong direction, the most likely cause is the missing flip, "
                "and the diagnostic is that img_mean changes.")
    assert not entry["diagnostic_ok"]
    assert "img_mean" in entry["feedback"]


def test_negated_threshold_is_not_a_diagnostic():
    entry = one("If the robot slams the arm toward joint limits, the most likely cause is the wrong unnorm key, "
                "and the diagnostic is that action[:3] is not above 0.1.")
    assert entry["cause_ok"] and not entry["diagnostic_ok"]


@pytest.mark.parametrize(
    "wrong",
    [
        "If the robot moves in slow random scribbles near the start pose, the most likely cause is the seed, and the diagnostic is a video.",
        "If the robot moves decisively in the wrong direction, the most likely cause is the unnorm key, and the diagnostic is the norm of action[:6] near zero.",
        "If the robot slams the arm toward joint limits, the most likely cause is the prompt, and the diagnostic is that reward stays 0.",
        "If the robot slams the arm toward joint limits, the most likely cause is ..., and the diagnostic is ...",
        "If the robot moves in slow random scribbles near the start pose, it is not the prompt, and the diagnostic is unclear.",
    ],
)
def test_feedback_never_leaks_the_right_answer(wrong):
    """A wrong part's feedback must not contain the words the rubric accepts for that part."""
    from vla_ch2.taxonomy import credited_causes

    rubric = load_rubric("sentences")
    entry = one(wrong)
    credited = credited_causes(entry["symptom"])
    assert not (entry["cause_ok"] and entry["diagnostic_ok"])
    feedback = normalise(entry["feedback"])
    if not entry["cause_ok"]:
        for cause in credited:
            assert not rubric.causes[cause].regex.search(feedback), entry["feedback"]
    if not entry["diagnostic_ok"]:
        for diagnostic in rubric.diagnostics:
            if diagnostic.cause in credited:
                for group in diagnostic.groups:
                    assert not group.regex.search(feedback), (group.id, entry["feedback"])


def test_rubric_hints_do_not_match_their_own_concepts():
    """Lint the packaged rubrics: a hint that matched its own concept would give the answer away."""
    sentences = load_rubric("sentences")
    for diagnostic in sentences.diagnostics:
        for group in diagnostic.groups:
            assert group.hint and not group.regex.search(normalise(group.hint)), (diagnostic.id, group.id)
    worksheet = load_rubric("worksheet")
    for box in worksheet.boxes:
        for group in box.groups:
            if group.required:
                assert group.hint and not group.regex.search(normalise(group.hint)), (box.id, group.id)


# ---------------------------------------------------------------------------
# Splitting and normalisation
# ---------------------------------------------------------------------------


def test_numbers_paths_and_slices_never_split_a_sentence():
    text = ("If the robot moves in slow random scribbles near the start pose, the most likely cause is the prompt, and "
            "the diagnostic is np.linalg.norm(action[:6]).mean() < 0.05 (e.g. 0.01), unlike img[::-1, ::-1] or a 1.5x gain.")
    assert split_sentences(text) == [text]


def test_several_sentences_on_one_line_and_wrapped_lines():
    text = ("If the robot moves in slow random scribbles near the start pose, the most likely cause is the prompt, "
            "and the diagnostic is a norm below 0.05. If the robot moves decisively in the wrong direction, the most\n"
            "likely cause is the missing flip, and the diagnostic is that\nreward never rises!  Is it? Yes.")
    assert split_sentences(text) == [
        "If the robot moves in slow random scribbles near the start pose, the most likely cause is the prompt, "
        "and the diagnostic is a norm below 0.05.",
        "If the robot moves decisively in the wrong direction, the most likely cause is the missing flip, and the "
        "diagnostic is that reward never rises!",
        "Is it?",
        "Yes.",
    ]


def test_a_labelled_check_stays_with_its_answer_even_when_it_sounds_like_a_symptom():
    # "hovers near zero" reads like the scribbles; after "Check:" it is this answer's diagnostic, not a new answer.
    text = ("Symptom: slow random scribbles near the start pose. Cause: the rephrased prompt without the scaffold. "
            "Check: norm(action[:6]) hovers under 0.05 all episode.")
    assert split_sentences(text) == [text]
    assert grade_sentences(text)["score"] == 1
    # An unlabelled piece that names a symptom still starts a new answer.
    two = "Slow random scribbles near the start pose: the prompt. Wrong direction: the flip."
    assert len(split_sentences(two)) == 2


@pytest.mark.parametrize("text", [
    # labels on their own lines, the diagnostic in a code block
    "Symptom: slow random scribbles near the start pose\nCause: the rephrased prompt\nDiagnostic:\n```\n"
    "np.linalg.norm(a[:, :6], axis=1).mean()  # 0.01, below 0.05\n```",
    # the template's slots as list items
    "- X: slow random scribbles near the start pose\n- Y: the rephrased prompt\n- Z: norm(action[:6]) below 0.05",
    # question and answer
    "Q: why slow random scribbles near the start pose?\nA: the prompt lost its scaffold.\n"
    "Tell-tale: norm(action[:6]) under 0.05 on every step.",
    # the cause before the symptom
    "Probably the rephrased prompt. Symptom it explains: slow random scribbles near the start pose. "
    "How I'd check: norm(action[:6]) below 0.05.",
    # typos in the symptom and in the label
    "Moves in slow random scribbels near the strat pose: the rephrased prompt. Diagnostc: norm(action[:6]) below 0.05.",
])
def test_one_answer_over_several_lines_and_pieces_is_graded_whole(text):
    result = grade_sentences(text)
    assert result["score"] == 1, [s["text"] for s in result["sentences"]]


def test_what_ends_an_answer():
    # a blank line: the diagnostic below it is not this answer's
    assert grade_sentences("Symptom: slow random scribbles near the start pose. Cause: the rephrased prompt.\n\n"
                           "norm(action[:6]) below 0.05")["score"] == 0
    # "If ..." starts a new answer, so the stub's empty line is not glued to an unfinished one
    text = ("If the robot is doing slow random scribbles near the start pose, the most likely cause is the prompt, "
            "and the diagnostic is ...\nIf the robot is doing ..., the most likely cause is ..., and the diagnostic is ...")
    assert len(split_sentences(text)) == 2
    # a stray cause before a whole answer does not stuff it
    text = ("The flip is subtle.\nIf the robot moves in slow random scribbles near the start pose, the most likely cause "
            "is the prompt, and the diagnostic is norm(action[:6]) below 0.05.")
    assert grade_sentences(text)["score"] == 1


def test_threshold_words_are_read_through_typos():
    entry = grade_sentences("If the robot slams the arm toward joint limits, the most likely cause is the bridge_orig "
                            "unnorm_key, and the diagnostic is max|action[:3]| abvoe 0.1 on many steps.")["sentences"][0]
    assert entry["diagnostic_ok"], entry["feedback"]


def test_one_sentence_per_line_without_full_stops():
    text = ("scribbles: bad prompt, norm below 0.05\nwrong direction: no flip, no reward though actions look healthy\n"
            "slams: bridge stats, action[:3] > 0.1")
    assert split_sentences(text) == text.split("\n")
    result = grade_sentences(text)
    assert [s["symptom"] for s in result["sentences"]] == list(SYMPTOMS)
    assert result["score"] == 3
    assert all("Not in the form" in s["feedback"] for s in result["sentences"])


@pytest.mark.parametrize("markers", [("1.", "2.", "3."), ("1)", "2)", "3)"), ("-", "-", "-"), ("*", "*", "*"), ("a)", "b)", "c)"),
                                     ("(1)", "(2)", "(3)"), ("- [ ]", "- [x]", "- [ ]"), ("Sentence 1:", "Sentence 2:", "Sentence 3:")])
def test_list_numbering_is_ignored(markers):
    text = "\n".join(f"{m} {s}" for m, s in zip(markers, [SCRIBBLES, WRONG_DIRECTION, SLAMS]))
    result = grade_sentences(text)
    assert [s["text"] for s in result["sentences"]] == [SCRIBBLES, WRONG_DIRECTION, SLAMS]
    assert result["score"] == 3


def test_numbered_sentences_on_one_line():
    result = grade_sentences(f"1. {SCRIBBLES} 2. {WRONG_DIRECTION} 3. {SLAMS}")
    assert [s["text"] for s in result["sentences"]] == [SCRIBBLES, WRONG_DIRECTION, SLAMS]
    assert result["score"] == 3


def test_case_smart_quotes_and_spaces_are_tolerated():
    text = ("IF THE ROBOT   MOVES IN \u201cSLOW RANDOM SCRIBBLES\u201d NEAR THE START POSE, THE MOST LIKELY CAUSE ISN\u2019T "
            "THE FLIP \u2014 IT\u2019S THE \u2018PROMPT TEMPLATE\u2019, AND THE DIAGNOSTIC IS NP.LINALG.NORM(ACTION[:6]) "
            "\u2248 0 (\u2264 0.05).")
    entry = one(text)
    assert entry["symptom"] == "scribbles"
    assert entry["cause_ok"] and entry["diagnostic_ok"], entry["feedback"]
    assert entry["text"] == text


def test_normalise():
    assert normalise("It\u2019s  NOT the \u201cflip\u201d\u2014isn\u2019t it?") == 'it is not the "flip"-is not it?'


def test_comments_and_html_comments_are_ignored():
    text = f"# SOLUTION\n# {SLAMS}\n<!-- {SCRIBBLES} -->\n{WRONG_DIRECTION}"
    assert split_sentences(text) == [WRONG_DIRECTION]


# ---------------------------------------------------------------------------
# Whole-answer feedback: counts, duplicates, odd input
# ---------------------------------------------------------------------------


def test_duplicate_symptom_counts_once():
    result = grade_sentences("\n".join([SLAMS, SLAMS, SCRIBBLES]))
    assert result["score"] == 2
    assert "already addresses" in result["sentences"][1]["feedback"]
    assert any("'moves decisively in the wrong direction'" in n for n in result["notes"])


@pytest.mark.parametrize(("sentences", "count"), [([SCRIBBLES], 1), ([SCRIBBLES, WRONG_DIRECTION, SLAMS, "And more."], 4)])
def test_more_or_fewer_than_three_sentences_are_noted(sentences, count):
    result = grade_sentences("\n".join(sentences))
    assert len(result["sentences"]) == count
    assert any(f"Found {count} sentence" in n for n in result["notes"])


@pytest.mark.parametrize("text", ["", "   \n\t\n", "# only a comment\n", "...!!!???", b""])
def test_empty_input(text):
    result = grade_sentences(text)
    assert result["sentences"] == [] and result["score"] == 0
    assert any("No sentences found" in n for n in result["notes"])


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n" + bytes(range(256)), b"%PDF-1.7\n...", bytes(range(256)) * 40,
                                  b"\x00\x01\x02\x03" * 500])
def test_binary_input_is_not_graded(data):
    for grader in (grade_sentences, grade_worksheet):
        result = grader(data)
        assert result["score"] == 0
        assert any("binary" in n or "not text" in n for n in result["notes"]), result["notes"]
    assert grade_sentences(data)["sentences"] == []


def test_non_utf8_is_decoded_with_replacement_and_said_so():
    data = CORRECT.replace("slams", "slams \xe9").encode("latin-1")
    result = grade_sentences(data)
    assert result["score"] == 3
    assert any("not valid UTF-8" in n for n in result["notes"])
    assert "\ufffd" in result["sentences"][2]["text"]


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-16-le"])
def test_other_unicode_encodings(codec):
    result = grade_sentences(CORRECT.encode(codec))
    assert result["score"] == 3


def test_str_and_bytes_agree():
    assert grade_sentences(CORRECT) == grade_sentences(CORRECT.encode("utf-8"))


def test_huge_input_is_capped_and_said_so():
    result = grade_sentences(CORRECT + "\n" + "Filler sentence. " * (MAX_CHARS // 10))
    assert len(result["sentences"]) == MAX_SENTENCES
    assert result["score"] == 3
    assert any(f"only the first {MAX_SENTENCES}" in n for n in result["notes"])
    assert any("too long" in n for n in result["notes"])


def test_wrong_type_raises_type_error():
    with pytest.raises(TypeError, match="str or bytes"):
        grade_sentences(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Rubric files: editable data, clear errors
# ---------------------------------------------------------------------------


def packaged(name: str) -> dict:
    return json.loads((ROOT / "vla_ch2" / "checking" / "rubrics" / f"{name}.json").read_text(encoding="utf-8"))


def test_packaged_rubrics_load_through_importlib_resources():
    assert set(load_rubric("sentences").symptoms) == set(SYMPTOMS)
    assert [b.title for b in load_rubric("worksheet").boxes] == [
        "Vision encoder", "Language tokenizer", "Transformer trunk", "Action head", "Detokenizer", "Simulator / embodiment"]


def test_an_instructor_can_add_a_synonym(tmp_path):
    sentence = ("If the robot performs an interpretive dance, the most likely cause is the prompt, and the diagnostic "
                "is that the norm of action[:6] is near zero.")
    assert one(sentence)["symptom"] is None
    data = packaged("sentences")
    data["symptoms"]["scribbles"]["synonyms"].append("interpretive dance")
    path = tmp_path / "sentences.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    result = grade_sentences(sentence, rubric=path)
    assert result["sentences"][0]["symptom"] == "scribbles"
    assert result["score"] == 1


def broken(edit) -> dict:
    data = copy.deepcopy(packaged("sentences"))
    edit(data)
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("causes"), "missing key 'causes'"),
        (lambda d: d["diagnostics"][0].update(cause="gremlins"), "diagnostics[0].cause"),
        (lambda d: d["diagnostics"][0].update(source="folklore"), "diagnostics[0].source"),
        (lambda d: d.update(diagnostics=[x for x in d["diagnostics"] if x["cause"] != "flip"]),
         "cause 'flip' has no diagnostic"),
        (lambda d: d["symptoms"]["slams"].update(words=["Slams!"]), "symptoms.slams.words[0]"),
        (lambda d: d["causes"]["flip"]["patterns"].append("flip("), "causes.flip.patterns"),
        (lambda d: d["causes"]["flip"]["patterns"].append("x*"), "can match empty text"),
        (lambda d: d["diagnostics"][0]["groups"][0].update(hint=""), "needs a hint"),
        (lambda d: d.update(rubric="worksheet"), "'worksheet' rubric"),
        (lambda d: d["markers"].update(cause="not a list"), "markers.cause"),
        (lambda d: d["negation"]["contrast"]["end"].append("\\s*"), "negation.contrast.end[1]"),
        (lambda d: d["negation"]["affirmed"].update(unless="not"), "negation.affirmed.unless"),
        (lambda d: d["negation"].update(contrast=["not"]), "negation.contrast"),
    ],
)
def test_malformed_rubric_errors_name_the_file_and_the_problem(tmp_path, edit, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(broken(edit)), encoding="utf-8")
    with pytest.raises(RubricError) as info:
        grade_sentences(CORRECT, rubric=path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_rubric_that_is_not_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"rubric": "sentences",\n  oops}', encoding="utf-8")
    with pytest.raises(RubricError, match=r"bad\.json: not valid JSON: .* line 2"):
        grade_sentences(CORRECT, rubric=path)
    with pytest.raises(RubricError, match="cannot read"):
        grade_worksheet("x", rubric=tmp_path / "missing.json")


# ---------------------------------------------------------------------------
# Exercise 2.x.3: the worksheet
# ---------------------------------------------------------------------------

WORKSHEET = """# My worksheet

## Vision encoder
SigLIP and DINOv2 features are concatenated channel-wise.

## Language tokenizer
The Llama 2 tokenizer.

## Transformer trunk
Llama 2 7B.

## Action head
The LM head does next-token prediction; the 256 least-used tokens of the vocabulary are overwritten with action tokens.

## Detokenizer
256 bins per dimension between the 1st and 99th quantile, un-normalized with the dataset statistics (unnorm_key).

## Simulator / embodiment
LIBERO on MuJoCo, end-effector delta actions, 7-D: 3 translation, 3 rotation, 1 gripper.
"""


def assert_worksheet_shape(result: dict) -> None:
    assert {"boxes", "score", "out_of"} <= set(result)
    assert result["out_of"] == 6 and len(result["boxes"]) == 6
    for box in result["boxes"]:
        assert set(box) == BOX_KEYS
        assert box["ok"] == (box["found"] and not box["missing"])
    assert result["score"] == sum(b["ok"] for b in result["boxes"])


def test_worksheet_solution_scores_full_marks():
    text = (ROOT / "solutions" / "worksheet.md").read_text(encoding="utf-8")
    assert "<!-- SOLUTION -->" in text
    result = grade_worksheet(text)
    assert_worksheet_shape(result)
    assert result["score"] == 6, [b["feedback"] for b in result["boxes"]]


def test_worksheet_stub_scores_zero_with_all_boxes_found():
    text = (ROOT / "exercises" / "worksheet.md").read_text(encoding="utf-8")
    assert "SOLUTION" not in text
    result = grade_worksheet(text)
    assert_worksheet_shape(result)
    assert result["score"] == 0
    assert all(b["found"] and "empty" in b["feedback"] for b in result["boxes"])


def test_worksheet_minimal_answer_passes():
    result = grade_worksheet(WORKSHEET)
    assert_worksheet_shape(result)
    assert result["score"] == 6, [b["feedback"] for b in result["boxes"]]
    assert set(result) == {"boxes", "score", "out_of", "notes"}


@pytest.mark.parametrize(
    "style",
    [
        "# {title}", "#### {title}", "## Box {n}: {title}", "### {n}. {title}", "## BOX {n} \u2014 {upper}",
        "**{title}**", "{title}:", "{title}\n" + "-" * 10, "{title}\n" + "=" * 10, "## {title} ##",
    ],
)
def test_worksheet_heading_styles(style):
    text = WORKSHEET
    for n, title in enumerate(["Vision encoder", "Language tokenizer", "Transformer trunk", "Action head", "Detokenizer",
                               "Simulator / embodiment"], start=1):
        text = text.replace(f"## {title}", style.format(n=n, title=title, upper=title.upper()))
    result = grade_worksheet(text)
    assert all(b["found"] for b in result["boxes"]), text
    assert result["score"] == 6


def test_worksheet_label_lines_and_paraphrases():
    text = """Vision encoder: two towers, SigLIP plus DINO v2, their outputs stacked along the channel axis.
Tokenizer: LLaMA-2's own SentencePiece tokenizer.
LLM backbone: a 7-billion-parameter Llama 2.
Action head: no separate head; actions are predicted as tokens, reusing the 256 rarely used vocabulary entries.
Action de-tokenizer: discretized into 256 buckets spanning the 1%-99% range, then rescaled with the per-dataset stats.
Embodiment: robosuite / MuJoCo (LIBERO), relative EEF motions, 7 numbers per step.
"""
    result = grade_worksheet(text)
    assert result["score"] == 6, [(b["box"], b["missing"]) for b in result["boxes"]]


def test_worksheet_missing_heading_and_missing_concept():
    text = WORKSHEET.replace("## Transformer trunk\nLlama 2 7B.\n", "").replace("SigLIP and DINOv2", "SigLIP")
    result = grade_worksheet(text)
    boxes = {b["box"]: b for b in result["boxes"]}
    trunk, vision = boxes["Transformer trunk"], boxes["Vision encoder"]
    assert not trunk["found"] and not trunk["ok"] and "No heading" in trunk["feedback"]
    assert vision["found"] and not vision["ok"]
    assert "SigLIP" in vision["matched"]
    assert vision["missing"] == ["name the second pretrained image encoder"]
    assert "DINO" not in vision["feedback"]  # a hint, not the answer
    assert result["score"] == 4


def test_worksheet_swapped_boxes_are_pointed_out():
    text = WORKSHEET.replace("The Llama 2 tokenizer.", "XX").replace("Llama 2 7B.", "The Llama 2 tokenizer.").replace("XX", "Llama 2 7B.")
    result = grade_worksheet(text)
    boxes = {b["box"]: b for b in result["boxes"]}
    assert boxes["Language tokenizer"]["ok"]  # "Llama 2 7B" names Llama too
    # The trunk's size written under the neighbouring box still counts for the trunk, and the feedback says where.
    assert boxes["Transformer trunk"]["ok"]
    assert "found under 'Language tokenizer'; it belongs here" in boxes["Transformer trunk"]["feedback"]
    text = WORKSHEET.replace("The Llama 2 tokenizer.", "AAA").replace(
        "Llama 2 7B.", "256 bins per dimension between the 1st and 99th quantile, un-normalized with dataset statistics.")
    trunk = {b["box"]: b for b in grade_worksheet(text)["boxes"]}["Transformer trunk"]
    assert not trunk["ok"] and "reads like the answer for 'Detokenizer'" in trunk["feedback"]


def test_worksheet_misconception_note_respects_negation():
    minmax = WORKSHEET.replace("between the 1st and 99th quantile", "between the min and max")
    box = grade_worksheet(minmax)["boxes"][4]
    assert not box["ok"] and "min and max" in box["feedback"]
    negated = WORKSHEET.replace("between the 1st and 99th quantile", "between the 1st and 99th quantile rather than the min and max")
    box = grade_worksheet(negated)["boxes"][4]
    assert box["ok"] and "min and max" not in box["feedback"]


def test_worksheet_without_headings_and_text_outside_boxes():
    result = grade_worksheet("SigLIP and DINOv2 features are fused.\nThe trunk is Llama 2 7B.")
    assert result["score"] == 0
    assert any("No box headings found" in n for n in result["notes"])
    assert any("Vision encoder" in n and "outside any box heading" in n for n in result["notes"])


def test_worksheet_headings_inside_code_fences_are_ignored():
    text = "```\n## Vision encoder\nSigLIP DINOv2 fused\n```\n"
    result = grade_worksheet(text)
    assert not result["boxes"][0]["found"]


@pytest.mark.parametrize("text", ["", "\n\n  \n", "<!-- nothing -->"])
def test_worksheet_empty_input(text):
    result = grade_worksheet(text)
    assert_worksheet_shape(result)
    assert result["score"] == 0 and any("empty" in n for n in result["notes"])


def test_worksheet_non_utf8_and_huge():
    result = grade_worksheet(WORKSHEET.replace("Llama 2 7B.", "Llama 2 7B, d\xe9j\xe0 vu.").encode("latin-1"))
    assert result["score"] == 6 and any("not valid UTF-8" in n for n in result["notes"])
    result = grade_worksheet(WORKSHEET + ("filler " * 20 + "\n") * (MAX_CHARS // 100))
    assert result["score"] == 6 and any("too long" in n for n in result["notes"])


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

runner = CliRunner()
EXERCISE = {"sentences": "2.x.4", "worksheet": "2.x.3"}


def invoke(command: str, *args: str, **kwargs):
    """``vla-ch2 check 2.x.4|2.x.3 ARGS`` without writing results.json (unless ARGS ask for it)."""
    extra = [] if "--results" in args else ["--no-results"]
    result = runner.invoke(app, ["check", EXERCISE[command], *args, *extra], **kwargs)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def assert_check_payload(data: dict, tests: int) -> None:
    assert {"exercise", "score", "max_score", "tests", "notes", "exit_code"} <= set(data)
    assert len(data["tests"]) == tests and data["max_score"] == tests
    assert data["score"] == sum(t["score"] for t in data["tests"])
    assert data["exit_code"] == (0 if data["score"] == data["max_score"] else 1)


@pytest.mark.parametrize(
    ("command", "path", "code", "score"),
    [
        ("sentences", "solutions/sentences.txt", 0, "total: 3/3"),
        ("sentences", "exercises/sentences.txt", 1, "total: 0/3"),
        ("worksheet", "solutions/worksheet.md", 0, "total: 6/6"),
        ("worksheet", "exercises/worksheet.md", 1, "total: 0/6"),
    ],
)
def test_cli_exit_codes_and_human_output(command, path, code, score):
    result = invoke(command, str(ROOT / path))
    assert result.exit_code == code
    assert result.stdout.rstrip().endswith(score)


@pytest.mark.parametrize("command", ["sentences", "worksheet"])
def test_cli_json_is_exactly_one_object(command, tmp_path):
    answer = tmp_path / "answer.txt"
    answer.write_text(CORRECT if command == "sentences" else WORKSHEET, encoding="utf-8")
    result = invoke(command, str(answer), "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)  # fails if anything else is printed
    assert_check_payload(data, 3 if command == "sentences" else 6)


@pytest.mark.parametrize("command", ["sentences", "worksheet"])
def test_cli_writes_results_json_with_points_per_part(command, tmp_path):
    answer = tmp_path / "answer.txt"
    answer.write_text(CORRECT if command == "sentences" else WORKSHEET, encoding="utf-8")
    out = tmp_path / "out" / "results.json"
    result = invoke(command, str(answer), "--results", str(out))
    assert result.exit_code == 0 and f"wrote {out}" in result.stdout
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["score"] == written["max_score"] == (3 if command == "sentences" else 6)
    assert all(t["status"] == "passed" and t["max_score"] == 1 for t in written["tests"])


@pytest.mark.parametrize("command", ["sentences", "worksheet"])
def test_cli_unreadable_input_exits_2_with_a_helpful_message(command, tmp_path):
    missing = invoke(command, str(tmp_path / "nope.txt"))
    assert missing.exit_code == 2
    assert "no such file" in missing.stderr and "nope.txt" in missing.stderr and "Traceback" not in missing.output
    directory = invoke(command, str(tmp_path))
    assert directory.exit_code == 2 and "is a directory" in directory.stderr
    as_json = invoke(command, str(tmp_path / "nope.txt"), "--json")
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["exit_code"] == 2


def test_cli_binary_file_and_stdin(tmp_path):
    blob = tmp_path / "answer.docx"
    blob.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    result = invoke("sentences", str(blob), "--json")
    assert result.exit_code == 1
    assert "ZIP" in " ".join(json.loads(result.stdout)["notes"])
    piped = invoke("sentences", "-", input=CORRECT.encode("utf-8"))
    assert piped.exit_code == 0 and "total: 3/3" in piped.stdout


def test_cli_bad_rubric_exits_2(tmp_path):
    rubric = tmp_path / "rubric.json"
    rubric.write_text("[1, 2", encoding="utf-8")
    result = invoke("sentences", str(ROOT / "solutions" / "sentences.txt"), "--rubric", str(rubric))
    assert result.exit_code == 2
    assert "rubric.json: not valid JSON" in result.stderr


def test_cli_in_a_real_process(tmp_path):
    """The installed command, as a reader runs it: ``vla-ch2 check 2.x.4 FILE``."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "vla_ch2.cli", "check"]
    answer = tmp_path / "answer.txt"
    answer.write_bytes(CORRECT.encode("utf-8"))
    ok = subprocess.run([*command, "2.x.4", str(answer), "--json", "--no-results"], capture_output=True, text=True,
                        cwd=ROOT, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["score"] == 3
    assert "Warning" not in ok.stderr and "deprecated" not in ok.stderr
    missing = subprocess.run([*command, "2.x.3", str(tmp_path / "none.md")], capture_output=True,
                             text=True, cwd=ROOT, timeout=60)
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr


def test_cli_missing_argument_is_a_usage_error_not_a_traceback():
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 2
    assert "Missing argument" in result.output and "Traceback" not in result.output


def test_module_docstrings_are_numpy_style():
    for func in (grade_sentences, grade_worksheet, load_rubric, split_sentences):
        doc, name = func.__doc__, func.__name__
        assert doc and "Parameters\n    ----------" in doc and "Returns\n    -------" in doc, name
    assert re.search(r"Exercise 2\.x\.4", sentences_module.__doc__)
    assert re.search(r"Exercise 2\.x\.3", worksheet_module.__doc__)
