"""Fuzz tests: random and hostile input never breaks the graders or the ``grade`` command line.

A seeded generator makes thousands of inputs (random bytes, random Unicode, very long
lines, punctuation only, nested brackets, huge numbers of sentences, mutated reference
answers, soups of rubric keywords); Hypothesis adds shrinking examples. Every result must
have the documented shape, be JSON-serialisable, and keep its score consistent.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from vla_ch2.checking.sentences import MAX_SENTENCES, grade_sentences
from vla_ch2.checking.worksheet import grade_worksheet
from vla_ch2.cli import app

ROOT = Path(__file__).resolve().parents[1]
SENTENCE_KEYS = {"text", "symptom", "cause", "cause_ok", "diagnostic_ok", "authority", "feedback"}
BOX_KEYS = {"box", "found", "matched", "missing", "ok", "feedback"}
SYMPTOMS = {"scribbles", "wrong_direction", "slams", None}
SEED = 20260520

SOLUTION_SENTENCES = (ROOT / "solutions" / "sentences.txt").read_text(encoding="utf-8")
SOLUTION_WORKSHEET = (ROOT / "solutions" / "worksheet.md").read_text(encoding="utf-8")
STUB_SENTENCES = (ROOT / "exercises" / "sentences.txt").read_text(encoding="utf-8")
KEYWORDS = (
    "if the robot is doing scribbles slams wrong direction near the start pose joint limits decisively , . ! ? ; : "
    "the most likely cause is not rather than instead of but the prompt template In:/Out: flip [::-1] 180 upside-down "
    "unnorm_key bridge_orig statistics and the diagnostic is norm action[:6] action[:3] 0.05 0.1 np.linalg.norm "
    "near zero exceeds reward never done True gripper cycles healthy by elimination img_mean bf16 is fine ruled out "
    "## Vision encoder ## Action head Box 1: SigLIP DINOv2 Llama 2 7B 256 bins 1st 99th quantile LIBERO delta 7-D "
    "# <!-- --> ``` ( ) [ ] { } ` ' \" \u201c \u201d \u2019 ... \u2026 \n \n\n - * 1. 2) a) \t"
).split(" ")


def check_sentences(result: dict) -> None:
    """The documented shape of grade_sentences, and a score that agrees with the entries."""
    assert isinstance(result, dict)
    assert {"sentences", "score", "out_of"} <= set(result)
    assert result["out_of"] == 3
    assert isinstance(result["sentences"], list) and len(result["sentences"]) <= MAX_SENTENCES
    for entry in result["sentences"]:
        assert set(entry) == SENTENCE_KEYS
        assert isinstance(entry["text"], str) and entry["text"] == entry["text"].strip() and entry["text"]
        assert entry["symptom"] in SYMPTOMS
        assert type(entry["cause_ok"]) is bool and type(entry["diagnostic_ok"]) is bool
        assert isinstance(entry["feedback"], str) and entry["feedback"]
        if entry["symptom"] is None:
            assert not entry["cause_ok"] and not entry["diagnostic_ok"]
    credited = {e["symptom"] for e in result["sentences"] if e["symptom"] and e["cause_ok"] and e["diagnostic_ok"]}
    assert type(result["score"]) is int and result["score"] == len(credited)
    assert all(isinstance(n, str) for n in result.get("notes", []))
    assert json.loads(json.dumps(result)) == result


def check_worksheet(result: dict) -> None:
    """The documented shape of grade_worksheet, and a score that agrees with the boxes."""
    assert isinstance(result, dict)
    assert {"boxes", "score", "out_of"} <= set(result)
    assert result["out_of"] == 6 and len(result["boxes"]) == 6
    for box in result["boxes"]:
        assert set(box) == BOX_KEYS
        assert isinstance(box["box"], str) and isinstance(box["feedback"], str) and box["feedback"]
        assert all(isinstance(x, str) for x in box["matched"] + box["missing"])
        assert type(box["found"]) is bool and type(box["ok"]) is bool
        assert box["ok"] == (box["found"] and not box["missing"])
    assert type(result["score"]) is int and result["score"] == sum(b["ok"] for b in result["boxes"])
    assert json.loads(json.dumps(result)) == result


def check_both(data) -> None:
    check_sentences(grade_sentences(data))
    check_worksheet(grade_worksheet(data))


# ---------------------------------------------------------------------------
# A seeded generator of random and hostile inputs
# ---------------------------------------------------------------------------


def random_unicode(rng: random.Random, n: int) -> str:
    pools = [(0x20, 0x7E), (0x00, 0x1F), (0x80, 0x24F), (0x300, 0x36F), (0x590, 0x6FF), (0x2000, 0x206F),
             (0x3000, 0x30FF), (0xD800, 0xDFFF), (0xFE00, 0xFFFF), (0x1F300, 0x1FAFF), (0x10000, 0x10FFFF)]
    out = []
    for _ in range(n):
        lo, hi = rng.choice(pools)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def mutate(rng: random.Random, text: str, edits: int) -> str:
    chars = list(text)
    for _ in range(edits):
        if not chars:
            break
        i = rng.randrange(len(chars))
        op = rng.random()
        if op < 0.3:
            del chars[i: i + rng.randint(1, 20)]
        elif op < 0.6:
            chars.insert(i, rng.choice(".!?\n#-*[]()`'\"\u201c\u2019 \t\x00\ufffd" + "abcxyz0123456789"))
        elif op < 0.8:
            j = rng.randrange(len(chars))
            chars[i], chars[j] = chars[j], chars[i]
        else:
            chars[i] = chars[i].upper() if chars[i].islower() else chars[i].lower()
    return "".join(chars)


def hostile_inputs(rng: random.Random, count: int):
    """Yield ``count`` inputs, cycling through the kinds of hostile input."""
    kinds = [
        lambda: rng.randbytes(rng.randint(0, 3000)),
        lambda: random_unicode(rng, rng.randint(0, 1500)),
        lambda: "".join(rng.choice(".!?,;:-[](){}`'\"\u2026#*~_=<>|\\/") for _ in range(rng.randint(1, 3000))),
        lambda: "".join(rng.choice("([{`") for _ in range(rng.randint(1, 400))) + "x. y! [::-1]? 0.05." +
                "".join(rng.choice(")]}`") for _ in range(rng.randint(0, 400))),
        lambda: " ".join(rng.choice(KEYWORDS) for _ in range(rng.randint(1, 200))),
        lambda: mutate(rng, SOLUTION_SENTENCES, rng.randint(1, 60)),
        lambda: mutate(rng, SOLUTION_WORKSHEET, rng.randint(1, 60)),
        lambda: mutate(rng, STUB_SENTENCES, rng.randint(1, 30)),
        lambda: mutate(rng, SOLUTION_SENTENCES, 5).encode(rng.choice(["utf-8", "utf-16", "utf-16-be", "latin-1", "utf-8-sig"]),
                                                           errors="replace"),
        lambda: "\n".join("#" * rng.randint(1, 8) + " " + " ".join(rng.choice(KEYWORDS) for _ in range(rng.randint(0, 6)))
                          for _ in range(rng.randint(1, 60))),
        lambda: "If the robot " + " ".join(rng.choice(KEYWORDS) for _ in range(rng.randint(5, 60))) + ".",
    ]
    for i in range(count):
        yield kinds[i % len(kinds)]()


def big_inputs(rng: random.Random):
    """Very long lines, huge numbers of sentences, deep nesting: bounded in time by the graders' caps."""
    yield "x" * 300_000
    yield "a. " * 60_000
    yield "If the robot slams. " * 20_000
    yield SOLUTION_SENTENCES * 200
    yield (SOLUTION_SENTENCES.replace("\n", " ")) * 100
    yield "(" * 50_000 + "[::-1]. " + ")" * 50_000
    yield "if " + "cause not the flip " * 10_000 + "diagnostic"
    yield "a,\n" * 50_000
    yield "## Vision encoder\n" * 20_000
    yield "# " + " " * 100_000 + "x"
    yield ">" * 100_000
    yield rng.randbytes(400_000)
    yield "\u00e9".encode("latin-1") * 300_000
    yield ("\U0001F916" * 100_000).encode("utf-8")
    yield "\n" * 200_000
    yield "." * 200_000


def test_seeded_hostile_inputs_never_break_the_graders():
    rng = random.Random(SEED)
    count = 0
    for data in hostile_inputs(rng, 1500):
        check_both(data)
        if isinstance(data, str):
            check_both(data.encode("utf-8", "surrogatepass"))
        count += 1
    assert count == 1500  # the generator yielded every input it was asked for


def test_big_inputs_are_capped_and_fast():
    rng = random.Random(SEED + 1)
    for data in big_inputs(rng):
        start = time.perf_counter()
        check_both(data)
        assert time.perf_counter() - start < 5.0, repr(data[:40])


def test_a_solution_sentence_deleted_or_shredded_loses_its_point():
    """Each of the three reference sentences carries one point: without it, or with its words shuffled, the rest keep theirs."""
    assert grade_sentences(SOLUTION_SENTENCES)["score"] == 3
    lines = SOLUTION_SENTENCES.splitlines()
    answers = [i for i, line in enumerate(lines) if line.startswith("If the robot")]
    assert len(answers) == 3
    rng = random.Random(SEED + 2)
    for i in answers:
        deleted = "\n".join(lines[:i] + lines[i + 1:])
        assert grade_sentences(deleted)["score"] == 2, lines[i][:60]
        words = lines[i].split()
        rng.shuffle(words)
        shredded = "\n".join(lines[:i] + [" ".join(words)] + lines[i + 1:])
        assert grade_sentences(shredded)["score"] <= 2, " ".join(words)[:60]


# ---------------------------------------------------------------------------
# Hypothesis: shrinking counter-examples if a property ever fails
# ---------------------------------------------------------------------------

FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=3000))
def test_any_bytes(data):
    check_both(data)


@FUZZ
@given(st.text(max_size=3000))
def test_any_text(text):
    check_both(text)


@FUZZ
@given(st.lists(st.sampled_from(KEYWORDS), max_size=150).map(" ".join))
def test_keyword_soup(text):
    check_both(text)


# ---------------------------------------------------------------------------
# The command line: always exactly one JSON object, exit codes 0, 1 or 2, no traceback
# ---------------------------------------------------------------------------

runner = CliRunner()
EXERCISE = {"sentences": "2.x.4", "worksheet": "2.x.3"}


def test_cli_on_random_files(tmp_path):
    rng = random.Random(SEED + 3)
    for i, data in enumerate(hostile_inputs(rng, 120)):
        path = tmp_path / f"answer{i}.txt"
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
        for command, parts in (("sentences", 3), ("worksheet", 6)):
            result = runner.invoke(app, ["check", EXERCISE[command], str(path), "--json", "--no-results"])
            assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
            assert result.exit_code in (0, 1)
            payload = json.loads(result.stdout)
            assert len(payload["tests"]) == parts and payload["exit_code"] == result.exit_code
            human = runner.invoke(app, ["check", EXERCISE[command], str(path), "--no-results"])
            assert human.exit_code == result.exit_code
            assert "total: " in human.stdout and "Traceback" not in human.output


@pytest.mark.parametrize("command", ["sentences", "worksheet"])
def test_cli_on_hostile_paths(command, tmp_path):
    (tmp_path / "dir.md").mkdir()
    paths = ["", " ", "\x00", "a\x00b", "x" * 5000, str(tmp_path / "missing.md"), str(tmp_path / "dir.md"),
             str(tmp_path), "/dev/null", "\u00e9\U0001F916.md", "../" * 50 + "etc"]
    for path in paths:
        for extra in ([], ["--json"]):
            result = runner.invoke(app, ["check", EXERCISE[command], path, "--no-results", *extra])
            assert result.exception is None or isinstance(result.exception, SystemExit), (path, result.exception)
            assert result.exit_code in (1, 2), (path, result.exit_code)
            assert "Traceback" not in result.output
            if extra:
                assert isinstance(json.loads(result.stdout), dict)
