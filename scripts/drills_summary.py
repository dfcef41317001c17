"""Write ``vla_ch2/data/drills_measured.json``: the measured layer of the failure taxonomy.

Reads every ``seed-*`` drill directory of each model's committed drills
matrix (v1: ``docs/results/drills-matrix``; v2-first, the first v2 weights, shipped until the
current ones replaced them: ``docs/results/v2-first/drills-matrix``; v2: ``docs/results/v2/drills-matrix``)
and summarises each run with :func:`vla_ch2.taxonomy.summarise`. The pages, the predicates and the
sentence grader read the result through :func:`vla_ch2.taxonomy.measured`;
``tests/test_taxonomy.py`` checks that the file matches the logs.

    python scripts/drills_summary.py [NAME=ROOT ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vla_ch2.taxonomy import MEASURED_FILE, summarise  # noqa: E402

#: Each model's committed drills matrix. A model readers may have run stays here after it is replaced,
#: so that what it showed is still credited (``vla_ch2.taxonomy.Measured.causes_of``).
DEFAULT_ROOTS = {"v1": "docs/results/drills-matrix", "v2-first": "docs/results/v2-first/drills-matrix",
                 "v2": "docs/results/v2/drills-matrix"}


def main(argv: list[str]) -> int:
    roots = DEFAULT_ROOTS
    if argv:  # NAME=ROOT, or a bare ROOT named after its folder
        roots = {name or Path(root).name: root for name, _, root in (arg.rpartition("=") for arg in argv)}
    models = {}
    for name, root in roots.items():
        try:
            models[name] = summarise(REPO / root if not Path(root).is_absolute() else Path(root), source=root)
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    out = REPO / "vla_ch2" / "data" / MEASURED_FILE
    partial = out.with_suffix(".partial")
    partial.write_text(json.dumps({"models": models}, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(out)
    print(f"wrote {out.relative_to(REPO)} (" + ", ".join(f"{name}: {len(m['seeds'])} seeds from {roots[name]}"
                                                         for name, m in models.items()) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
