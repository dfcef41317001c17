"""How often the free-text graders agree with an instructor's hand grading.

A hand-graded set is a folder (``tests/data/hand_graded/`` is the project's):

* ``sentences_<name>.jsonl``: one sentence per line, ``{"id", "text", "verdict", "class", ...}``;
  ``verdict`` is 1 when the sentence earns the point for its symptom;
* ``worksheets_<name>/*.md`` with ``worksheets_<name>.json``:
  ``{file: {"verdicts": [box1, ..., box6], "class": ...}}``.

:func:`sentence_agreement` grades each sentence on its own and compares the
grader's verdict (symptom recognised, cause and diagnostic both right) with
the instructor's; :func:`worksheet_agreement` does the same box by box. Run
``python -m vla_ch2.checking.agreement tests/data/hand_graded dev`` to print
both, with every disagreement.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from vla_ch2.checking.sentences import grade_sentences
from vla_ch2.checking.worksheet import grade_worksheet


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {number}: not JSON ({exc.msg})") from None
    return rows


def sentence_verdict(text: str) -> int:
    """1 when the grader credits ``text`` (one sentence) for the symptom it recognises, else 0."""
    result = grade_sentences(text)
    return int(any(s["symptom"] and s["cause_ok"] and s["diagnostic_ok"] for s in result["sentences"]))


def sentence_agreement(path: str | Path) -> dict:
    """Agreement on a ``sentences_*.jsonl`` file: overall, per class, and the disagreements."""
    rows = _read_jsonl(Path(path))
    per_class: Counter = Counter()
    agreed_class: Counter = Counter()
    misses = []
    for row in rows:
        got = sentence_verdict(row["text"])
        per_class[row["class"]] += 1
        if got == int(row["verdict"]):
            agreed_class[row["class"]] += 1
        else:
            misses.append({"id": row["id"], "class": row["class"], "hand": int(row["verdict"]), "grader": got,
                           "text": row["text"]})
    agreed = sum(agreed_class.values())
    return {"items": len(rows), "agreed": agreed, "agreement": agreed / len(rows) if rows else float("nan"),
            "per_class": {c: (agreed_class[c], n) for c, n in sorted(per_class.items())}, "misses": misses}


def worksheet_agreement(folder: str | Path, verdicts: str | Path) -> dict:
    """Agreement box by box on a folder of worksheets and its verdicts file."""
    folder, table = Path(folder), json.loads(Path(verdicts).read_text(encoding="utf-8"))
    boxes = agreed = 0
    misses = []
    per_class: Counter = Counter()
    agreed_class: Counter = Counter()
    for name, entry in sorted(table.items()):
        result = grade_worksheet((folder / name).read_bytes())
        for number, (box, hand) in enumerate(zip(result["boxes"], entry["verdicts"]), start=1):
            boxes += 1
            per_class[entry["class"]] += 1
            if int(box["ok"]) == int(hand):
                agreed += 1
                agreed_class[entry["class"]] += 1
            else:
                misses.append({"file": name, "box": number, "class": entry["class"], "hand": int(hand),
                               "grader": int(box["ok"]), "feedback": box["feedback"]})
    return {"items": boxes, "agreed": agreed, "agreement": agreed / boxes if boxes else float("nan"),
            "per_class": {c: (agreed_class[c], n) for c, n in sorted(per_class.items())}, "misses": misses}


def measure(root: str | Path, name: str) -> dict:
    """Both agreements for the set ``name`` (``dev``, ``holdout``, ...) under ``root``.

    A set's files are ``sentences_<name>.jsonl``, ``worksheets_<name>/`` and ``worksheets_<name>.json``, in
    ``root/<name>/`` when that folder exists (held-out sets), else in ``root``.
    """
    root = Path(root)
    base = root / name if (root / name).is_dir() else root
    return {
        "sentences": sentence_agreement(base / f"sentences_{name}.jsonl"),
        "worksheets": worksheet_agreement(base / f"worksheets_{name}", base / f"worksheets_{name}.json"),
    }


def main(argv: list[str]) -> int:  # pragma: no cover - a report for people
    if len(argv) != 2:
        print("usage: python -m vla_ch2.checking.agreement HAND_GRADED_DIR SET_NAME   (e.g. tests/data/hand_graded dev)")
        return 2
    report = measure(argv[0], argv[1])
    for kind, result in report.items():
        print(f"{kind}: {result['agreed']}/{result['items']} = {100 * result['agreement']:.1f} %")
        for cls, (ok, n) in result["per_class"].items():
            print(f"  {cls:<24} {ok}/{n}")
        for miss in result["misses"]:
            where = miss.get("id") or f"{miss['file']} box {miss['box']}"
            what = miss.get("text") or miss.get("feedback", "")
            print(f"  MISS {where} [{miss['class']}] hand {miss['hand']} grader {miss['grader']}: {what[:200]}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
