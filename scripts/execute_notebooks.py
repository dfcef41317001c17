"""Execute every notebook under docs/notebooks/ in place, from a clean kernel, so the site shows real outputs.

    python scripts/execute_notebooks.py

``tests/test_notebooks.py`` executes copies again and fails if the stored
outputs differ from what the code computes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbclient
import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "docs" / "notebooks"


def execute(path: Path):
    """Run the notebook at ``path`` from a clean kernel, in its own folder; return it with fresh outputs."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    return notebook


def main() -> int:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        started = time.perf_counter()
        nbformat.write(execute(path), path)
        print(f"executed {path.name} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
