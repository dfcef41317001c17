"""Tests for the Exercise 2.x.3 worksheet grader: stuffing, negation, neighbouring boxes, box 6 and typos.

Every worksheet here is short and written for the test; none is taken from the
hand-graded sets under ``tests/data/hand_graded``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from vla_ch2.checking.rubrics import RubricError, load_rubric
from vla_ch2.checking.worksheet import Speller, grade_worksheet

ROOT = Path(__file__).resolve().parents[1]
TITLES = ("Vision encoder", "Language tokenizer", "Transformer trunk", "Action head", "Detokenizer",
          "Simulator / embodiment")
GOOD = (
    "SigLIP and DINOv2 features, concatenated per patch.",
    "The Llama 2 tokenizer.",
    "Llama 2 7B.",
    "The LM head predicts the action tokens; they overwrite the 256 least-used tokens of the vocabulary.",
    "256 bins per dimension between the 1st and 99th quantile, then un-normalized with per-dataset statistics.",
    "About 970k real-robot trajectories from Open X-Embodiment.",
)
DUMP = ("SigLIP DINOv2 fused, Llama 2 tokenizer, Llama 2 7B, 256 least-used tokens overwritten, next-token prediction, "
        "256 bins from the 1st-99th quantile, un-normalized with dataset statistics, Open X-Embodiment, 970k, "
        "7-D end-effector deltas")


def sheet(*replace: tuple[int, str]) -> str:
    """The good worksheet, with box ``n`` (1-based) replaced by ``text`` for each ``(n, text)``."""
    boxes = list(GOOD)
    for number, text in replace:
        boxes[number - 1] = text
    return "\n\n".join(f"## {title}\n{text}" for title, text in zip(TITLES, boxes)) + "\n"


def verdicts(text: str) -> list[int]:
    result = grade_worksheet(text)
    assert result["score"] == sum(b["ok"] for b in result["boxes"])
    for box in result["boxes"]:
        assert box["ok"] == (box["found"] and not box["missing"])
    return [int(b["ok"]) for b in result["boxes"]]


def box(text: str, number: int) -> dict:
    return grade_worksheet(text)["boxes"][number - 1]


def test_the_short_good_worksheet_earns_every_box():
    assert verdicts(sheet()) == [1] * 6


# ---------------------------------------------------------------------------
# 1. Keyword stuffing
# ---------------------------------------------------------------------------


def test_one_dump_pasted_under_every_box_earns_nothing():
    result = grade_worksheet(sheet(*((n, DUMP) for n in range(1, 7))))
    assert result["score"] == 0
    for entry in result["boxes"]:
        assert "pasted under several boxes" in entry["feedback"] or "list of keywords" in entry["feedback"]
    assert any("Keyword stuffing" in note for note in result["notes"])


def test_a_dump_under_one_box_costs_only_that_box_and_names_what_it_covers():
    assert verdicts(sheet((6, GOOD[5] + " " + DUMP))) == [1, 1, 1, 1, 1, 0]
    feedback = box(sheet((6, DUMP)), 6)["feedback"]
    assert "'Vision encoder'" in feedback and "'Action head'" in feedback and "list of keywords" in feedback


def test_reordered_dumps_under_every_box_are_caught_without_being_identical():
    parts = DUMP.split(", ")
    dumps = [", ".join(parts[k:] + parts[:k]) for k in range(6)]
    assert verdicts(sheet(*((n, dumps[n - 1]) for n in range(1, 7)))) == [0] * 6


def test_the_same_long_sentence_under_two_boxes_earns_neither():
    text = "The 256 least-used tokens are overwritten and the LM head predicts them, with 256 bins between the 1st and 99th quantile."
    result = grade_worksheet(sheet((4, text), (5, text + " Un-normalized with dataset statistics.")))
    assert [b["ok"] for b in result["boxes"]][3:5] == [False, False]
    assert "'Detokenizer'" in result["boxes"][3]["feedback"] and "pasted" in result["boxes"][3]["feedback"]


def test_a_long_good_answer_that_covers_its_neighbours_is_not_stuffing():
    vision = ("Two pretrained ViTs, SigLIP and DINOv2, see the same 224 x 224 image; their patch features are concatenated "
              "channel-wise and an MLP projector maps them into the input space of the Llama 2 7B trunk.")
    head = ("No separate head: the Llama 2 7B language model's own output layer predicts the action tokens by next-token "
            "prediction with cross-entropy. The 256 least-used tokens of the Llama vocabulary are overwritten; the "
            "detokenizer later maps each one to a bin centre (256 bins between the 1st and 99th quantile) and "
            "un-normalizes it with the per-dataset statistics.")
    assert verdicts(sheet((1, vision), (4, head))) == [1] * 6


def test_short_identical_answers_are_not_stuffing():
    assert verdicts(sheet((2, "Llama 2 7B."), (3, "Llama 2 7B."))) == [1] * 6


# ---------------------------------------------------------------------------
# 2. Negation
# ---------------------------------------------------------------------------


def test_a_negated_right_answer_does_not_count():
    entry = box(sheet((1, "Not the fused SigLIP + DINOv2 encoder I expected; it uses a single CLIP ViT.")), 1)
    assert not entry["ok"] and "CLIP" in entry["feedback"]
    entry = box(sheet((1, "Not the fused SigLIP + DINOv2 encoder I expected; just one pretrained ViT.")), 1)
    assert not entry["ok"] and "negat" in entry["feedback"]


@pytest.mark.parametrize(
    "text",
    [
        "Not CLIP but SigLIP and DINOv2, concatenated.",
        "Unlike CLIP-based VLMs, it fuses SigLIP and DINOv2 features.",
        "CLIP is not used: SigLIP and DINOv2 features are stacked channel-wise.",
        "Not only SigLIP but also DINOv2; their features are concatenated.",
    ],
)
def test_a_negated_wrong_idea_does_not_trigger_the_misconception(text):
    entry = box(sheet((1, text)), 1)
    assert entry["ok"], entry["feedback"]
    assert "CLIP" not in entry["feedback"]


@pytest.mark.parametrize(
    ("number", "text", "ok"),
    [
        (1, "SigLIP and DINOv2, but their features are not fused or concatenated.", False),
        (3, "Llama 2 13B, not 7B.", False),
        (3, "Llama 2 7B, not 13B.", True),
        (4, "No separate head and predicts the 256 least-used tokens of the vocabulary as next tokens.", True),
        (4, "A separate MLP head, not the LM head; it regresses the 256 least-used token ids.", False),
        (5, "256 bins between the 1st and 99th quantile rather than the min and max; un-normalized with dataset statistics.", True),
        (5, "256 bins between the min and max, not the 1st and 99th quantile; un-normalized with dataset statistics.", False),
        (6, "Not Open X-Embodiment: LIBERO only.", False),
        # "or" and "nor" share a negation out, also over a list; "and" and a plain comma do not.
        (4, "No separate MLP or diffusion head: the LM head predicts the 256 least-used tokens.", True),
        (4, "No separate MLP, regression or diffusion head; the LM head predicts the 256 least-used tokens.", True),
        (4, "A diffusion head, not an MLP or the LM head, reads out the 256 least-used tokens.", False),
        (1, "Not CLIP, SigLIP and DINOv2 features concatenated.", True),
    ],
)
def test_negation_scope(number, text, ok):
    assert box(sheet((number, text)), number)["ok"] is ok


# ---------------------------------------------------------------------------
# 3. A fact written under a neighbouring box
# ---------------------------------------------------------------------------


def test_a_fact_under_the_box_before_counts_for_its_own_box():
    text = sheet((4, "Each dimension is put into 256 bins between the 1st and 99th quantile, and the LM head predicts the "
                     "action tokens, which overwrite the least-used tokens of the vocabulary."),
                 (5, "Each bin index becomes its bin centre, un-normalized with the per-dataset statistics."))
    assert verdicts(text) == [1] * 6
    detok = box(text, 5)
    assert "found under 'Action head'; it belongs here" in detok["feedback"]
    assert "bin range from the 1st and 99th quantiles" in detok["matched"]
    assert "belongs to 'Detokenizer' and counts there" in box(text, 4)["feedback"]


def test_the_least_used_tokens_under_the_tokenizer_count_for_the_action_head():
    text = sheet((2, "The Llama 2 tokenizer; its 256 least-used tokens are overwritten by the action tokens."),
                 (4, "No new head: the LM head predicts the action tokens by next-token prediction."))
    assert verdicts(text) == [1] * 6
    assert "found under 'Language tokenizer'" in box(text, 4)["feedback"]
    assert "belongs to 'Action head'" in box(text, 2)["feedback"]


def test_the_box_a_fact_was_written_under_earns_only_on_its_own_facts():
    text = sheet((4, "The 1st-99th quantile range of each dimension."),
                 (5, "Discretized into 256 bins; each bin centre is un-normalized with the per-dataset statistics."))
    assert verdicts(text)[3:5] == [0, 1]


def test_a_shared_fact_never_moves_between_boxes():
    # the trunk's Llama is not the tokenizer's, and the other way round
    assert verdicts(sheet((3, "A 7B-parameter language model.")))[2] == 0
    assert verdicts(sheet((2, "The instruction goes into the In: ... Out: prompt."), (3, "Llama 2 7B.")))[1] == 0


def test_the_llama_tokenizer_named_as_a_tokenizer_under_a_neighbour_counts_for_box_2():
    # "the Llama 2 tokenizer" under the trunk is a tokenizer fact; "Llama 2 7B" there is not (test above)
    text = sheet((2, "The instruction goes into the In: ... Out: prompt."),
                 (3, "Llama 2 7B; the prompt is first cut into tokens by the Llama 2 tokenizer."))
    assert verdicts(text)[1:3] == [1, 1]
    # the trunk still cannot borrow its Llama from the tokenizer's box
    assert verdicts(sheet((2, "The Llama 2 tokenizer."), (3, "A 7B-parameter language model.")))[1:3] == [1, 0]


def test_an_empty_box_borrows_nothing():
    text = sheet((4, "The LM head predicts the action tokens (the 256 least-used ones, overwritten); 256 bins between "
                     "the 1st and 99th quantile, un-normalized with dataset statistics."),
                 (5, "TODO"))
    assert verdicts(text)[3:5] == [1, 0]


def test_no_borrowing_from_a_box_that_is_not_a_neighbour():
    text = sheet((1, GOOD[0] + " The actions are un-normalized with per-dataset statistics."),
                 (5, "256 bins between the 1st and 99th quantile."))
    assert verdicts(text)[4] == 0


def test_no_borrowing_from_a_stuffed_neighbour():
    text = sheet((5, "256 bins between the 1st and 99th quantile."), (6, DUMP))
    assert verdicts(text)[4:] == [0, 0]


def test_no_borrowing_from_a_neighbour_that_states_a_wrong_idea_about_this_box():
    text = sheet((4, GOOD[3] + " Actions are un-normalized from the min and max."),
                 (5, "256 bins between the 1st and 99th quantile."))
    assert verdicts(text)[4] == 0


# ---------------------------------------------------------------------------
# 4. Box 6: Section 3 names the training data and the action space, not a simulator
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Open X-Embodiment.",
        "Trained on OXE.",
        "970k real-robot demonstrations.",
        "7-D end-effector deltas: 3 translation, 3 rotation, 1 gripper.",
        "A Franka arm in LIBERO; 7-dimensional end-effector delta actions.",
    ],
)
def test_box6_passes_with_the_data_or_the_action_space(text):
    assert box(sheet((6, text)), 6)["ok"]


@pytest.mark.parametrize("text", ["LIBERO (MuJoCo).", "The LIBERO simulator on robosuite and MuJoCo, a Franka Panda arm."])
def test_box6_with_only_the_simulator_fails_and_says_why(text):
    entry = box(sheet((6, text)), 6)
    assert not entry["ok"]
    assert "training data and the action space" in entry["feedback"] and "later" in entry["feedback"]
    assert "Open X" not in entry["feedback"] and "970" not in entry["feedback"]  # hints, not the answer


def test_box6_joint_space_actions_are_a_wrong_fact():
    assert not box(sheet((6, "LIBERO demonstrations with joint-position actions.")), 6)["ok"]
    assert not box(sheet((6, "Open X-Embodiment; 7-D joint-position deltas.")), 6)["ok"]


def test_reference_solution_box6_names_the_data_and_the_action_space():
    text = (ROOT / "solutions" / "worksheet.md").read_text(encoding="utf-8")
    entry = grade_worksheet(text)["boxes"][5]
    assert entry["ok"]
    assert "end-effector delta actions" in entry["matched"] and len(entry["matched"]) >= 3


# ---------------------------------------------------------------------------
# 5. Typos in technical names
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1, "SigLip and DINO v2, features concatenated."),
        (1, "Sig-LIP and Dinov2, features concatinated."),
        (1, "Sigilp and DINOv2 features, fused."),
        (2, "The Lamma 2 tokeniser."),
        (2, "LLaMa-2's tokenizer."),
        (3, "Lamma 2 7B."),
        (5, "256 bins between the 1st and 99th qunatile, unnormalised with per-dataset statistcs."),
        (5, "256 bins spanning the quantil range, un-normalized with the dataset stats."),
        (5, "Binned between the 1 % and 99 % quantiles, then de-normalized with dataset statistics."),
        (6, "Open X-Embodyment."),
        (6, "7-DoF end-efector deltas."),
    ],
)
def test_recognisable_typos_still_count(number, text):
    entry = box(sheet((number, text)), number)
    assert entry["ok"], (text, entry["feedback"])


def test_a_misspelt_detokenizer_heading_is_found():
    text = sheet().replace("## Detokenizer", "## Detokeniser")
    assert verdicts(text) == [1] * 6


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1, "CLIP and DINOv2 features, concatenated."),  # CLIP is not a typo of SigLIP
        (1, "SigLIP and DINOv3 features, concatenated."),  # a different version number is not a typo
        (5, "Quantized into 256 bins, then un-normalized with dataset statistics."),  # quantize is not quantile
        (3, "Llava 7B."),  # another model, not a typo of Llama
    ],
)
def test_near_misses_are_not_typos(number, text):
    assert not box(sheet((number, text)), number)["ok"]


def test_speller_rules():
    speller = Speller(frozenset({"llama", "quantile", "quantize", "siglip", "embodiment", "dinov2"}), 6)
    assert speller.correct("lamma") == "llama" and speller.correct("llamma") == "llama"
    assert speller.correct("qunatile") == "quantile" and speller.correct("quantil") == "quantile"
    assert speller.correct("quantize") == "quantize"  # a term itself stays
    assert speller.correct("clip") == "clip" and speller.correct("lava") == "lava"
    assert speller.correct("dinov3") == "dinov3"
    assert speller.correct("embodyment") == "embodiment"
    assert speller.respell("the lamma and the qunatile") == "the llama and the quantile"


# ---------------------------------------------------------------------------
# The rubric stays instructor-editable and validated
# ---------------------------------------------------------------------------


def packaged() -> dict:
    return json.loads((ROOT / "vla_ch2" / "checking" / "rubrics" / "worksheet.json").read_text(encoding="utf-8"))


def simulator(data: dict) -> dict:
    return next(b for b in data["boxes"] if b["id"] == "simulator")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: simulator(d)["pass_with"].update(any_of=[["training_data"], ["nope"]]), "no group with id 'nope'"),
        (lambda d: simulator(d)["pass_with"].update(any_of=[["training_data"]]), "every required group must be in one"),
        (lambda d: d["neighbours"].update(also=[["action_head", "warp_drive"]]), "neighbours.also[0]"),
        (lambda d: d["spelling"]["terms"].append("Two Words"), "spelling.terms"),
        (lambda d: d["stuffing"].update(beyond_neighbours=0), "stuffing.beyond_neighbours"),
        (lambda d: d["negation"].update(scope_words="six"), "negation.scope_words"),
    ],
)
def test_malformed_worksheet_rubric_errors_name_the_place(tmp_path, edit, message):
    data = copy.deepcopy(packaged())
    edit(data)
    path = tmp_path / "worksheet.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(RubricError) as info:
        grade_worksheet(sheet(), rubric=path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_an_instructor_can_add_a_spelling_term(tmp_path):
    text = sheet((1, "SigLIP and DINOv2 features, juxtaposed."))
    assert not box(text, 1)["ok"]
    data = packaged()
    next(g for g in data["boxes"][0]["groups"] if g["id"] == "fused")["synonyms"].append("juxtaposed")
    path = tmp_path / "worksheet.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert grade_worksheet(text, rubric=path)["boxes"][0]["ok"]
    assert grade_worksheet(sheet((1, "SigLIP and DINOv2 features, juxtaposd.")), rubric=path)["boxes"][0]["ok"] is False
    data["spelling"]["terms"].append("juxtaposed")
    path.write_text(json.dumps(data), encoding="utf-8")
    assert grade_worksheet(sheet((1, "SigLIP and DINOv2 features, juxtaposd.")), rubric=path)["boxes"][0]["ok"]


def test_shared_groups_are_those_named_in_two_boxes():
    rubric = load_rubric("worksheet")
    assert rubric.shared == {"llama"}
    assert rubric.neighbours[1] == (0, 2, 3) and rubric.neighbours[3] == (1, 2, 4)


def test_six_ordered_items_without_box_names_are_read_in_order():
    text = "\n".join(f"({letter}) {title}\n    {body}" for letter, title, body in zip(
        "abcdef", ["Pixels in", "Words in", "The big model", "What comes out", "Back to robot units", "The robot"],
        GOOD))
    result = grade_worksheet(text)
    assert result["score"] == 6
    assert any("read in order as boxes 1 to 6" in note for note in result["notes"])


@pytest.mark.parametrize("line", [
    "**1. Vision encoder.** {body}",
    "1) **Vision encoder** \u2014 {body}",
    "Box 1 \u2014 Vision encoder: {body}",
])
def test_inline_headings_with_numbers_bold_and_dashes(line):
    result = grade_worksheet(line.format(body=GOOD[0]))
    assert result["boxes"][0]["found"] and result["boxes"][0]["ok"], result["boxes"][0]


def test_the_template_number_opens_a_box_whose_name_is_garbled():
    text = sheet().replace("## Action head", "## Box 4: Action haed")
    assert verdicts(text) == [1] * 6
    # The name wins over the number: "Box 4: Detokenizer" is the detokenizer.
    swapped = sheet().replace("## Action head", "## Box 4: Detokenizer").replace("## Detokenizer", "## Box 5: Action head")
    assert verdicts(swapped) == [1] * 6


def test_an_unnamed_item_among_six_numbered_ones_is_read_by_its_place():
    labels = ["Vision", "Tokenizer", "Backbone", "Output / actions", "Detokenizer", "Data / robot"]
    text = "\n".join(f"{k}. **{label}**: {body}" for k, (label, body) in enumerate(zip(labels, GOOD), 1))
    assert verdicts(text) == [1] * 6
    # An item named for another box than its place keeps the names: nothing is re-read by place.
    swapped = text.replace("**Backbone**", "**Detokenizer**", 1)
    assert grade_worksheet(swapped)["boxes"][3]["found"] is False


@pytest.mark.parametrize("text", [
    "The 256 least-used tokens are overwritten; the language model's output layer emits them.",
    "The 256 least-used tokens are overwritten; the model emits them one by one as next tokens.",
])
def test_the_llm_output_layer_in_other_words(text):
    assert box(sheet((4, text)), 4)["ok"]


def test_six_headings_that_name_no_box_are_read_in_order():
    questions = ["What looks at the picture?", "How do words become numbers?", "The big network", "Where do actions come out?",
                 "From tokens back to motions", "What it learned from"]
    text = "# My worksheet\n\n" + "\n\n".join(f"### {q}\n{body}" for q, body in zip(questions, GOOD))
    result = grade_worksheet(text)
    assert result["score"] == 6 and any("read in order as boxes 1 to 6" in note for note in result["notes"])
    # five headings, or one naming another box than its place: nothing is read by place
    assert grade_worksheet(text.replace("### From tokens back to motions\n", ""))["score"] < 6
    assert grade_worksheet(text.replace("### The big network", "### Detokenizer"))["boxes"][2]["found"] is False


@pytest.mark.parametrize(("number", "text"), [
    (3, "The original Llama 1, 7B."),
    (4, "512 action tokens overwrite the least-used tokens; the LM head predicts them."),
    (4, "256 action tokens overwrite the most frequently used tokens; the LM head predicts them."),
    (5, "256 bins between the 5th and 95th percentiles; un-normalized with per-dataset statistics."),
    (5, "256 bins between the 1st and 99th quantile, un-normalized with global statistics for every robot."),
])
def test_subtly_wrong_facts_earn_nothing(number, text):
    entry = box(sheet((number, text)), number)
    assert not entry["ok"] and "Check" in entry["feedback"], entry


def test_a_pointer_is_text_of_its_own_and_billion_is_read_through_typos():
    text = sheet((2, "(see below)"), (3, "Llama 2 7B; the prompt is first cut into tokens by the Llama 2 tokenizer."))
    assert verdicts(text)[1] == 1
    assert verdicts(sheet((3, "Llama-2, 7 billon params.")))[2] == 1


@pytest.mark.parametrize("layout", ["box_dash", "html", "bare_pipes"])
def test_boxes_in_other_layouts_are_found(layout):
    if layout == "box_dash":
        text = "\n".join(f"Box {k} \u2014 {body}" for k, body in enumerate(GOOD, 1))
    elif layout == "html":
        rows = "\n".join(f"<tr><td>Box {k}: {t}</td><td>{body}</td></tr>" for k, (t, body) in enumerate(zip(TITLES, GOOD), 1))
        text = f"<table>\n<tr><th>Box</th><th>Answer</th></tr>\n{rows}\n</table>\n"
    else:
        text = "\n".join(f"{t.lower():<24}|  {body}" for t, body in zip(TITLES, GOOD))
    assert verdicts(text) == [1] * 6


def test_wordpiece_is_wrong_even_beside_llama():
    entry = box(sheet((2, "Llama 2's tokenizer, a WordPiece tokenizer like BERT's.")), 2)
    assert not entry["ok"] and "WordPiece" in entry["feedback"]
    assert box(sheet((2, "Not WordPiece: the Llama 2 tokenizer.")), 2)["ok"]


def test_a_bare_keyword_list_touching_three_other_boxes_is_stuffing():
    text = sheet((5, "binning quantiles 1st 99th q01 q99 unnorm_key statistics SigLIP DINOv2 Llama 7B Open X-Embodiment "
                     "7-D delta"))
    entry = box(text, 5)
    assert not entry["ok"] and "keywords" in entry["feedback"]


# ---------------------------------------------------------------------------
# Notes kept as data: every box inside one code block
# ---------------------------------------------------------------------------

KEYS = ("vision-encoder", "language_tokenizer", "transformer_trunk", "action_head", "detokenizer", "simulator_embodiment")


@pytest.mark.parametrize("separator", [": ", " = "])
def test_notes_kept_as_yaml_or_key_value_in_a_code_block_are_read_box_by_box(separator):
    notes = "\n".join(f"{key}{separator}{text}" for key, text in zip(KEYS, GOOD))
    assert verdicts(f"My notes:\n\n```yaml\n{notes}\n```\n") == [1] * 6
    # one key's answer wrong: only that box is lost, so the keys really are read as the boxes
    wrong = notes.replace(GOOD[2], "A diffusion transformer trained from scratch.")
    assert verdicts(f"```\n{wrong}\n```\n") == [1, 1, 0, 1, 1, 1]


def test_a_code_block_under_a_heading_is_still_content_not_headings():
    code = "```\naction_head: the LM head over 256 overwritten least-used tokens\n```"
    assert verdicts(sheet((4, code))) == [1] * 6  # read under box 4's heading, as its text
    assert verdicts(sheet((1, code))) == [0, 1, 1, 1, 1, 1]  # its key does not open box 4 inside box 1's text
