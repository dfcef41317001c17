"""Step logs: one JSON line per step with the chapter's five fields.

``step``, ``img_mean`` (mean of the image the policy saw), ``action`` (the
seven env-action elements, rounded), ``reward`` and ``tag`` (which run wrote
the line). The writer flushes every line so a killed run loses nothing it
had done; the reader refuses a malformed line and says where it is.

The library's drills add two optional *instrument* fields, one per broken
input that the five fields cannot see (measured in docs/results):

* ``img_top_minus_bottom``: mean of the top half minus mean of the bottom
  half of the image the policy saw. ``img_mean`` is blind to a 180-degree
  rotation (a mean does not change when pixels move); this number changes sign.
* ``token_prob``: the mean probability the model gave the action tokens it
  emitted. A prompt the model was not trained on leaves the image and the
  statistics intact but makes the model unsure.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from pathlib import Path

import numpy as np

FIELDS = ("step", "img_mean", "action", "reward", "tag")
INSTRUMENT_FIELDS = ("img_top_minus_bottom", "token_prob")
ACTION_DECIMALS = 4


class LogFormatError(ValueError):
    """A step-log line that does not have the chapter's five fields."""


def step_record(step: int, image: np.ndarray, action, reward: float, tag: str) -> dict:
    """Build one log record from what the loop saw and did at one step."""
    return {
        "step": int(step),
        "img_mean": round(float(np.mean(image)), 4),
        "action": [round(float(a), ACTION_DECIMALS) for a in np.asarray(action).reshape(-1)],
        "reward": float(reward),
        "tag": str(tag),
    }


def instrument_fields(image: np.ndarray, token_prob: float | None) -> dict:
    """The optional instrument fields for one step (``token_prob`` only when the policy reports it)."""
    image = np.asarray(image, dtype=np.float64)
    half = image.shape[0] // 2
    fields = {"img_top_minus_bottom": round(float(image[:half].mean() - image[image.shape[0] - half:].mean()), 4)}
    if token_prob is not None:
        fields["token_prob"] = round(float(token_prob), 4)
    return fields


class StepLogWriter:
    """Append step records to a ``.jsonl`` file, one flushed line each.

    Use as a context manager. ``mode="w"`` starts the file anew.
    """

    def __init__(self, path: str | os.PathLike, mode: str = "w"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, mode, encoding="utf-8")

    def write(self, record: dict) -> None:
        """Check and append one record."""
        validate_record(record, where=str(self.path))
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "StepLogWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def validate_record(record: dict, where: str = "record") -> dict:
    """Raise :class:`LogFormatError` naming the field unless ``record`` is a valid step line."""
    if not isinstance(record, dict):
        raise LogFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [f for f in FIELDS if f not in record]
    if missing:
        raise LogFormatError(f"{where}: missing field(s) {missing}; a step line needs {list(FIELDS)}")
    if not isinstance(record["step"], int) or isinstance(record["step"], bool) or record["step"] < 0:
        raise LogFormatError(f"{where}: field 'step' must be a non-negative integer, got {record['step']!r}")
    for name in ("img_mean", "reward"):
        value = record[name]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise LogFormatError(f"{where}: field {name!r} must be a finite number, got {value!r}")
    action = record["action"]
    if not isinstance(action, list) or len(action) != 7:
        raise LogFormatError(f"{where}: field 'action' must be a list of 7 numbers, got {action!r}")
    if not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in action):
        raise LogFormatError(f"{where}: field 'action' must hold numbers only, got {action!r}")
    if not all(math.isfinite(a) for a in action):
        raise LogFormatError(f"{where}: field 'action' holds NaN or infinity, got {action!r}; "
                             "the policy emitted a non-finite action (check the un-normalization statistics)")
    if not isinstance(record["tag"], str) or not record["tag"]:
        raise LogFormatError(f"{where}: field 'tag' must be a non-empty string, got {record['tag']!r}")
    for name in INSTRUMENT_FIELDS:
        value = record.get(name, 0.0)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise LogFormatError(f"{where}: instrument field {name!r} must be a finite number, got {value!r}")
    if not 0.0 <= record.get("token_prob", 0.0) <= 1.0:
        raise LogFormatError(f"{where}: field 'token_prob' is a probability, got {record['token_prob']!r}")
    return record


def stored_log(path: str | os.PathLike) -> Path | None:
    """Where a step log is: ``path`` itself, or ``path.gz`` (archived logs are kept gzip-compressed); None if neither."""
    path = Path(path)
    if path.is_file():
        return path
    archived = path.with_name(path.name + ".gz")
    return archived if archived.is_file() else None


def read_records(path: str | os.PathLike) -> list[dict]:
    """Read and check every line of a step log (or of its ``.gz`` archive); blank lines are not allowed either."""
    path = Path(path)
    found = stored_log(path)
    if found is None:
        raise FileNotFoundError(f"{path}: no such step log (run `vla-ch2 episode ... --out {path}` first)")
    path = found
    records = []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="strict") as handle:
        for number, line in enumerate(handle, start=1):
            where = f"{path}, line {number}"
            if not line.endswith("\n"):
                raise LogFormatError(f"{where}: the last line is cut short (no newline); the run was interrupted")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LogFormatError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            records.append(validate_record(record, where=where))
    return records


def read_log(path: str | os.PathLike):
    """Load a step log into a pandas DataFrame, one row per step.

    Columns: ``step``, ``img_mean``, ``action`` (list of 7), ``reward``, ``tag``,
    then each instrument field that every line of the log carries.
    """
    import pandas as pd

    records = read_records(path)
    instruments = [f for f in INSTRUMENT_FIELDS if records and all(f in r for r in records)]
    return pd.DataFrame(records, columns=[*FIELDS, *instruments])
