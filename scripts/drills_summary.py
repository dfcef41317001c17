"""Write ``vla_ch2/data/drills_measured.json``: the measured layer of the failure taxonomy.

Reads every ``seed-*`` drill directory under ROOT (default: the committed
drills matrix, ``docs/results/drills-matrix``) and summarises each run with
:func:`vla_ch2.taxonomy.summarise`. The pages, the predicates and the
sentence grader read the result through :func:`vla_ch2.taxonomy.measured`;
``tests/test_taxonomy.py`` checks that the file matches the logs.

    python scripts/drills_summary.py [ROOT]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vla_ch2.taxonomy import MEASURED_FILE, summarise  # noqa: E402

DEFAULT_ROOT = "docs/results/drills-matrix"


def main(argv: list[str]) -> int:
    root = argv[0] if argv else DEFAULT_ROOT
    try:
        summary = summarise(REPO / root if not Path(root).is_absolute() else Path(root), source=root)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = REPO / "vla_ch2" / "data" / MEASURED_FILE
    partial = out.with_suffix(".partial")
    partial.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(out)
    print(f"wrote {out.relative_to(REPO)} ({len(summary['seeds'])} seeds from {root})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
