"""The failure taxonomy of §2.4: for each broken toggle, what the chapter says, what the mechanism predicts, what was measured.

One source of truth, read by the pages, the predicates and the sentence
grader of Exercise 2.x.4. Three layers, kept apart on purpose:

* **the chapter** (:data:`CHAPTER`): the symptom §2.4 gives each failure and
  the diagnostic it proposes, with its thresholds;
* **the mechanism** (:func:`mechanism`): what the code path predicts for any
  LIBERO checkpoint, computed from the statistics themselves (the ratio of the
  ``bridge_orig`` q01..q99 range to the suite's; what a non-action token
  decodes to, since the detokenizer clips it to the top bin);
* **the measurement** (:func:`measured`): what the committed drills of the
  teaching models (v1, the first v2 weights and v2) did, seed by seed, summarised in
  ``vla_ch2/data/drills_measured.json`` by :func:`summarise` from the run logs
  (``python scripts/drills_summary.py``; a test checks the file against the logs).

:func:`symptom_of` names the chapter symptom a run shows against its
baseline; :func:`credited_causes` says, per symptom, which causes a reader
may give and on whose authority ("chapter" or "measured").
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from vla_ch2 import conventions as C

# --- The three symptoms and the three causes ------------------------------------------------------

#: The chapter's symptom descriptions (§2.4), quoted; the ids are used everywhere else.
SYMPTOMS = {
    "scribbles": "moves in slow random scribbles near the start pose",
    "wrong_direction": "moves decisively in the wrong direction",
    "slams": "slams the arm toward joint limits",
}


@dataclass(frozen=True)
class Cause:
    """One broken toggle: which setting, its drill value, the drill's tag, and how to name it."""

    id: str
    toggle: str
    drill_value: object
    tag: str
    label: str


CAUSES = {
    "prompt": Cause("prompt", "prompt_template", "rephrased", "bad_prompt",
                    "the prompt template (the In:/Out: scaffold is missing)"),
    "flip": Cause("flip", "flip_image", False, "no_flip", "the missing 180-degree image flip ([::-1, ::-1])"),
    "unnorm": Cause("unnorm", "unnorm_key", "bridge_orig", "bad_unnorm",
                    "the wrong unnorm_key (another embodiment's statistics)"),
}
#: Drill tag -> cause id.
CAUSE_OF_TAG = {cause.tag: cid for cid, cause in CAUSES.items()}

# --- What the chapter says (§2.4 and Exercise 2.x.1) ------------------------------------------------

#: The chapter's bad-prompt threshold: the time-mean of ``norm(action[:6])`` stays below it.
CHAPTER_STILLNESS = 0.05
#: The chapter's bad-unnorm threshold: ``max |action[:3]|`` above it (metres) ...
CHAPTER_TRANSLATION = 0.1
#: ... on more than this fraction of steps ("a non-trivial fraction").
CHAPTER_FRACTION = 0.1
#: The chapter's claimed LIBERO-vs-Bridge translation ratio ("roughly 3 to 5x", larger under Bridge).
CHAPTER_SCALE = (3.0, 5.0)


@dataclass(frozen=True)
class ChapterClaim:
    """What §2.4 says of one failure: its symptom and its diagnostic."""

    symptom: str
    diagnostic: str


CHAPTER = {
    "prompt": ChapterClaim("scribbles", f"the time-mean of norm(action[:6]) stays below about {CHAPTER_STILLNESS}: "
                                        "the arm twitches near zero"),
    "flip": ChapterClaim("wrong_direction", "by elimination: healthy action magnitudes and a gripper that cycles "
                                            "like the baseline's, yet reward never rises above 0"),
    "unnorm": ChapterClaim("slams", f"max |action[:3]| exceeds {CHAPTER_TRANSLATION} m on a non-trivial fraction "
                                    f"of steps: translations {CHAPTER_SCALE[0]:g} to {CHAPTER_SCALE[1]:g}x too large"),
}

# --- The relative tests the drills are judged with ---------------------------------------------------

#: A run's translation scale is "another embodiment's" when its largest translation is off the
#: baseline's by more than this factor, either way (the predicates' ``factor``).
SCALE_FACTOR = 3.0
#: A run "stays still" when the median over steps of ``norm(action[:6])`` is below this.
STILLNESS = CHAPTER_STILLNESS
#: A prompt face is called only with this margin around ``STILLNESS`` (stall below STILLNESS / MARGIN,
#: drive above STILLNESS * MARGIN); in between it is ambiguous.
FACE_MARGIN = 2.0
#: A cause counts as measured for a symptom when it showed that symptom on at least this share of seeds.
MIN_SHARE = 0.1


def _actions(run) -> np.ndarray:
    return np.array([np.asarray(a, dtype=np.float64) for a in run["action"]]).reshape(-1, C.ACTION_DIM)


def scale_ratio(run, baseline) -> float:
    """The run's largest translation divided by the baseline's (1.0: same scale)."""
    mine, reference = np.max(np.abs(_actions(run)[:, :3])), np.max(np.abs(_actions(baseline)[:, :3]))
    return float(mine / reference) if reference > 1e-9 else (float("inf") if mine > 1e-9 else 1.0)


def median_arm_norm(run) -> float:
    """The median over steps of ``norm(action[:6])``: how much the arm is asked to move, typically."""
    return float(np.median(np.linalg.norm(_actions(run)[:, :6], axis=1)))


def rewarded(run) -> bool:
    """Whether the run was ever rewarded."""
    return bool(np.any(np.asarray(run["reward"], dtype=np.float64) > 0))


def prompt_face(run) -> str:
    """Which face a run shows: ``"stall"``, ``"drive"`` or ``"ambiguous"`` (too close to :data:`STILLNESS`)."""
    norm = median_arm_norm(run)
    if norm < STILLNESS / FACE_MARGIN:
        return "stall"
    if norm > STILLNESS * FACE_MARGIN:
        return "drive"
    return "ambiguous"


def symptom_of(run, baseline) -> str | None:
    """The chapter symptom a run shows, judged against the baseline of the same drills.

    * translations on a scale :data:`SCALE_FACTOR` times smaller than the
      baseline's: the arm creeps near its start pose, ``"scribbles"``;
    * :data:`SCALE_FACTOR` times larger: ``"slams"``;
    * on the baseline's scale but still (median ``norm(action[:6])`` below
      :data:`STILLNESS`) and never rewarded: ``"scribbles"``;
    * on the baseline's scale, moving, never rewarded: ``"wrong_direction"``;
    * rewarded: ``None`` (the run works).
    """
    ratio = scale_ratio(run, baseline)
    if ratio < 1.0 / SCALE_FACTOR:
        return "scribbles"
    if ratio > SCALE_FACTOR:
        return "slams"
    if rewarded(run):
        return None
    return "scribbles" if median_arm_norm(run) < STILLNESS else "wrong_direction"


# --- What the mechanism predicts, from the statistics themselves ------------------------------------


def mechanism(suite_stats: dict | None = None, other_stats: dict | None = None) -> dict:
    """What un-normalising with another embodiment's statistics does, computed from the two sets of q01..q99.

    Parameters
    ----------
    suite_stats, other_stats : dict or None
        Action statistics with ``q01`` and ``q99`` (default: OpenVLA-7B's
        ``libero_object_no_noops`` and ``bridge_orig``, :mod:`vla_ch2.conventions`).

    Returns
    -------
    dict
        ``range_ratio``: per masked dimension, the other range divided by the
        suite's (below 1: the other statistics shrink that dimension);
        ``translation_ratio``: the geometric mean over x, y, z;
        ``top_bin_suite`` / ``top_bin_other``: what a non-action token decodes
        to under each (the detokenizer clips it to the top bin, so it is the
        top bin centre un-normalised: close to q99 on every dimension).
    """
    suite = suite_stats or C.OPENVLA_LIBERO_OBJECT_ACTION_STATS
    other = other_stats or C.BRIDGE_ORIG_ACTION_STATS
    q01_s, q99_s = np.asarray(suite["q01"], dtype=np.float64), np.asarray(suite["q99"], dtype=np.float64)
    q01_o, q99_o = np.asarray(other["q01"], dtype=np.float64), np.asarray(other["q99"], dtype=np.float64)
    mask = np.asarray(C.ACTION_MASK)
    ratio = (q99_o - q01_o)[mask] / (q99_s - q01_s)[mask]
    top = np.full(C.ACTION_DIM, C.BIN_CENTERS[-1])
    return {
        "range_ratio": [float(r) for r in ratio],
        "translation_ratio": float(np.exp(np.mean(np.log(ratio[:3])))),
        "top_bin_suite": [float(v) for v in C.unnormalize_actions(top, q01_s, q99_s)[:6]],
        "top_bin_other": [float(v) for v in C.unnormalize_actions(top, q01_o, q99_o)[:6]],
    }


def mechanism_summary(cause: str) -> str:
    """What the code path predicts for ``cause`` on any LIBERO checkpoint, in words, with numbers from the statistics.

    Translation ratios are computed from OpenVLA-7B's ``libero_object_no_noops``
    statistics and from the teaching model's own (its ``dataset_statistics.json``).
    """
    seven_b = mechanism()
    if cause == "unnorm":
        teaching = mechanism(_teaching_statistics())
        rotation = seven_b["range_ratio"][3:]
        return (f"`bridge_orig`'s q01..q99 range is {seven_b['translation_ratio']:.3f} times LIBERO-Object's for "
                f"translation (OpenVLA-7B's statistics; {teaching['translation_ratio']:.3f} for the teaching "
                f"model's) and {min(rotation):.2f} to {max(rotation):.2f} times for rotation: the same bins decode "
                f"to translations about {1 / seven_b['translation_ratio']:.0f} times smaller, a creep near the start "
                "pose. Slamming needs the reverse: statistics wider than the ones the model was trained with.")
    if cause == "prompt":
        top = ", ".join(f"{v:.2f}" for v in seven_b["top_bin_suite"][:3])
        return ("Only the text changes; image and statistics are intact. A model that still emits action tokens but "
                "is unsure of them acts on its guesses; one that answers with text tokens decodes them to the top bin "
                "on every dimension (the detokenizer has no 'not an action'): translations near q99 "
                f"({top} under LIBERO-Object's statistics), a saturated drive rather than stillness.")
    if cause == "flip":
        return ("The model sees the scene upside down: `img_mean` is unchanged (a rotation moves pixels, not their "
                "mean), but the top-minus-bottom brightness changes sign. The model acts with its usual confidence "
                "on a world it was never shown: full-scale actions toward the wrong places.")
    raise KeyError(f"unknown cause {cause!r}; expected one of {', '.join(CAUSES)}")


def _teaching_statistics() -> dict:
    resource = resources.files("vla_ch2").joinpath("checkpoints").joinpath("teaching-vla-libero-object")
    stats = json.loads(resource.joinpath("dataset_statistics.json").read_text(encoding="utf-8"))
    return stats["libero_object_no_noops"]["action"]


# --- What the drills measured -----------------------------------------------------------------------

#: The committed summary of the drills (package data, written by :func:`summarise`).
MEASURED_FILE = "drills_measured.json"


def summarise(root: str | Path, source: str | None = None) -> dict:
    """Summarise a directory of drills (``root/seed-S/{baseline,no_flip,bad_prompt,bad_unnorm}.jsonl``).

    Per seed and run: the symptom (:func:`symptom_of`), the scale ratio, the
    median arm norm, the prompt face and whether it was rewarded; plus the
    instrument medians when the logs carry them. Nothing here is typed in:
    every number is read from the logs.
    """
    from vla_ch2.logs import INSTRUMENT_FIELDS, read_log

    root = Path(root)
    seeds = sorted((p for p in root.glob("seed-*") if p.is_dir()), key=lambda p: int(p.name.split("-")[1]))
    if not seeds:
        raise FileNotFoundError(f"{root}: no seed-* drill directories (run `vla-ch2 drills --out {root}/seed-0`)")
    rows = {}
    for directory in seeds:
        runs = {tag: read_log(directory / f"{tag}.jsonl") for tag in ("baseline", *CAUSE_OF_TAG)}
        baseline = runs["baseline"]
        row = {}
        for tag, run in runs.items():
            entry = {
                "steps": int(len(run)),
                "symptom": symptom_of(run, baseline) if tag != "baseline" else None,
                "scale_ratio": round(scale_ratio(run, baseline), 4),
                "median_arm_norm": round(median_arm_norm(run), 4),
                "face": prompt_face(run),
                "rewarded": rewarded(run),
            }
            for name in INSTRUMENT_FIELDS:
                if name in run.columns:
                    entry[f"median_{name}"] = round(float(np.median(np.asarray(run[name], dtype=float))), 4)
            row[tag] = entry
        rows[directory.name.split("-")[1]] = row
    return {"source": source or str(root), "seeds": rows}


@functools.lru_cache(maxsize=1)
def _measured_data() -> dict:
    resource = resources.files("vla_ch2").joinpath("data").joinpath(MEASURED_FILE)
    return json.loads(resource.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Measured:
    """What the committed drills showed, per cause: symptom counts over seeds and the signature ranges.

    When the drills of several models were measured (teaching model v1, the
    first v2 weights, v2), the counts and ranges pool every seed of every
    model and ``models`` keeps each model's own :class:`Measured`: a cause is
    credited with a symptom when any one model showed it on :data:`MIN_SHARE`
    of its seeds, so a reader whose model behaves like any of them is never
    marked wrong.
    """

    source: str
    seeds: int
    steps: int
    symptoms: dict  # cause id -> {symptom id (or "works"): number of seeds}
    scale_ratio: dict  # cause id -> (min, max) over seeds
    median_arm_norm: dict  # cause id -> (min, max)
    prompt_faces: dict  # face -> number of seeds (the bad_prompt runs)
    baseline_unrewarded: tuple  # seeds whose baseline was never rewarded
    models: tuple = ()  # (name, Measured) per model, when several were measured

    def share(self, cause: str, symptom: str) -> float:
        """The share of seeds (of all models together) on which ``cause``'s drill showed ``symptom``."""
        return self.symptoms[cause].get(symptom, 0) / self.seeds

    def causes_of(self, symptom: str) -> list[str]:
        """The causes that showed ``symptom`` on at least :data:`MIN_SHARE` of the seeds (of any one model)."""
        if self.models:
            found = {c for _, facts in self.models for c in facts.causes_of(symptom)}
            return [c for c in CAUSES if c in found]
        return [c for c in CAUSES if self.share(c, symptom) >= MIN_SHARE]

    def credits(self, cause: str, symptom: str) -> bool:
        """Whether the drills credit ``cause`` with ``symptom`` (see :meth:`causes_of`)."""
        return cause in self.causes_of(symptom)


def measured(data: dict | None = None) -> Measured:
    """The measured layer, from ``vla_ch2/data/drills_measured.json`` (or a :func:`summarise` result).

    The file holds one summary per model under ``"models"`` (name -> :func:`summarise`
    result); a single summary is read as one model.
    """
    data = data or _measured_data()
    if "models" in data:
        per_model = tuple((name, _measured_one(summary)) for name, summary in data["models"].items())
        pooled = _measured_one({"source": "; ".join(f"{name}: {s['source']}" for name, s in data["models"].items()),
                                "seeds": {f"{name}/{seed}": row for name, s in data["models"].items()
                                          for seed, row in s["seeds"].items()}})
        return dataclasses.replace(pooled, models=per_model)
    return _measured_one(data)


def _measured_one(data: dict) -> Measured:
    rows = data["seeds"]
    symptoms = {cid: {} for cid in CAUSES}
    scale, arm = {}, {}
    for cid, cause in CAUSES.items():
        for row in rows.values():
            key = row[cause.tag]["symptom"] or "works"
            symptoms[cid][key] = symptoms[cid].get(key, 0) + 1
        values = [row[cause.tag]["scale_ratio"] for row in rows.values()]
        scale[cid] = (min(values), max(values))
        norms = [row[cause.tag]["median_arm_norm"] for row in rows.values()]
        arm[cid] = (min(norms), max(norms))
    faces: dict = {}
    for row in rows.values():
        faces[row["bad_prompt"]["face"]] = faces.get(row["bad_prompt"]["face"], 0) + 1
    unrewarded = tuple(s if "/" in s else int(s) for s, row in rows.items() if not row["baseline"]["rewarded"])
    steps = min(row["baseline"]["steps"] for row in rows.values())
    return Measured(data["source"], len(rows), steps, symptoms, scale, arm, faces, unrewarded)


# --- Which causes a reader may give for a symptom ---------------------------------------------------


def credited_causes(symptom: str, facts: Measured | None = None) -> dict[str, tuple[str, ...]]:
    """The causes credited for ``symptom``: cause id -> its authorities, ``"chapter"`` and/or ``"measured"``.

    The chapter's cause is always credited (a reader who writes the chapter's
    answer gets the point); a cause the drills showed with this symptom on at
    least :data:`MIN_SHARE` of the seeds is credited too.
    """
    if symptom not in SYMPTOMS:
        raise KeyError(f"unknown symptom {symptom!r}; expected one of {', '.join(SYMPTOMS)}")
    facts = facts or measured()
    out: dict[str, list[str]] = {}
    for cid, claim in CHAPTER.items():
        if claim.symptom == symptom:
            out.setdefault(cid, []).append("chapter")
    for cid in facts.causes_of(symptom):
        out.setdefault(cid, []).append("measured")
    return {cid: tuple(sources) for cid, sources in out.items()}


def measured_sentence(cause: str, facts: Measured | None = None) -> str:
    """One sentence, with numbers from the drills, on what ``cause`` does on LIBERO (per model when several)."""
    facts = facts or measured()

    def clause(f: Measured) -> str:
        parts = [f"{SYMPTOMS[s] if s in SYMPTOMS else 'still succeeds'} on {n} of {f.seeds} seeds"
                 for s, n in sorted(f.symptoms[cause].items(), key=lambda kv: -kv[1])]
        low, high = f.scale_ratio[cause]
        return f"{'; '.join(parts)} (largest translation {low:.3g} to {high:.3g} times the baseline's)"

    if facts.models:
        return (f"On LIBERO the {CAUSES[cause].tag} drill of the teaching model "
                + "; ".join(f"{name}: {clause(f)}" for name, f in facts.models) + ".")
    return f"On LIBERO the {CAUSES[cause].tag} drill {clause(facts)}."
