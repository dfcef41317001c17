"""Write the real drill logs Exercise 2.x.1's relative predicates are graded on.

Picks a few seeds and horizons of the committed drills matrix
(``docs/results/drills-matrix``) so that every situation a reader meets is
there: the rephrased prompt stalling (the five fields separate all four
runs), driving at full scale (it looks like a missing flip), and a baseline
never rewarded within the horizon (elimination has nothing to lean on).
Only the chapter's five fields are kept. The grader decides from the logs
themselves what each run demands (:mod:`vla_ch2.checking.ex_2x1`).

    python scripts/drill_fixtures.py
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vla_ch2.logs import FIELDS, read_records  # noqa: E402

MATRIX = REPO / "docs" / "results" / "drills-matrix"
OUT = REPO / "vla_ch2" / "checking" / "fixtures" / "drills.jsonl.gz"
#: (seed, horizon): the prompt stalls (0, 48, 31 at 400 steps), drives (2, 10, 37), is ambiguous (8);
#: the baseline is never rewarded (9) or not yet (1 at 250 steps).
PICKS = [(0, 500), (48, 500), (31, 400), (2, 500), (10, 500), (37, 500), (8, 500), (9, 500), (1, 250)]
TAGS = ("baseline", "no_flip", "bad_prompt", "bad_unnorm")


def main() -> int:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as out:
        for seed, horizon in PICKS:
            for tag in TAGS:
                records = read_records(MATRIX / f"seed-{seed}" / f"{tag}.jsonl")
                if len(records) < horizon:
                    raise SystemExit(f"seed {seed} {tag}: {len(records)} steps, fewer than {horizon}")
                for record in records[:horizon]:
                    row = {"seed": seed, "horizon": horizon, **{k: record[k] for k in FIELDS}}
                    out.write((json.dumps(row, separators=(",", ":")) + "\n").encode("utf-8"))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(buffer.getvalue())
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB, {len(PICKS)} drills)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
