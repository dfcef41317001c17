"""The notebooks the site shows are executed, not pasted: each runs from a clean kernel and reproduces its outputs.

Each notebook under ``docs/notebooks/`` is executed from a fresh kernel in a
copy (``nbclient``, working directory ``docs/notebooks`` as for a reader), must
finish without an error in under a minute, and must print exactly the text
stored in the committed notebook, which is what the site renders. Refresh the
stored outputs with ``python scripts/execute_notebooks.py``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "docs" / "notebooks").glob("*.ipynb"))
#: Text that varies from run to run by nature (object addresses), not by what the notebook computes.
VOLATILE = re.compile(r" at 0x[0-9a-f]+")


def _runner():
    """``scripts/execute_notebooks.py``, the one place that knows how a notebook is executed."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("execute_notebooks", REPO / "scripts" / "execute_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _texts(notebook) -> list[str]:
    """Every code cell's printed and displayed text, in order. Consecutive stdout chunks are joined: how the
    kernel splits one cell's printing into messages depends on timing, not on what was printed."""
    out = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        streaming = False
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                if streaming:
                    out[-1] += output["text"]
                else:
                    out.append(output["text"])
                streaming = True
                continue
            streaming = False
            if "text/plain" in output.get("data", {}):
                out.append(output["data"]["text/plain"])
            elif output.get("output_type") == "error":
                out.append(f"ERROR {output.get('ename')}: {output.get('evalue')}")
    return [VOLATILE.sub("", text) for text in out]


def test_there_are_the_three_notebooks_the_site_promises():
    assert {p.stem for p in NOTEBOOKS} >= {"inside-predict-action", "reading-drill-logs", "how-many-episodes"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_from_a_clean_kernel_and_shows_what_it_computes(path):
    stored = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    fresh = _runner().execute(path)
    assert time.perf_counter() - started < 60, "a notebook should run on a CPU in under a minute"
    assert all(o.get("output_type") != "error" for c in fresh.cells if c.cell_type == "code" for o in c.outputs)
    assert _texts(fresh) == _texts(stored), f"{path.name}: stored outputs differ; run scripts/execute_notebooks.py"
    assert all(c.get("outputs") for c in stored.cells if c.cell_type == "code"), "every code cell shows an output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_carries_an_exercise_answer(path):
    """The functions a reader is asked to write are not defined in any notebook."""
    source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    for name in ("failure_drills", "is_bad_prompt", "is_bad_unnorm", "is_no_flip", "is_bad_prompt_relative",
                 "is_bad_unnorm_relative", "is_no_flip_relative", "run_sweep", "first_close_step",
                 "success_rate", "plot_first_close"):
        assert f"def {name}(" not in source, f"{path.name} defines {name}, an exercise answer"


def test_printed_text_is_compared_whatever_messages_the_kernel_split_it_into():
    import nbformat

    def notebook(*chunks):
        cell = nbformat.v4.new_code_cell("print('a'); print('b')")
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=c) for c in chunks]
        return nbformat.v4.new_notebook(cells=[cell])

    assert _texts(notebook("a\n", "b\n")) == _texts(notebook("a\nb\n")) == ["a\nb\n"]
    assert _texts(notebook("a\n", "c\n")) != _texts(notebook("a\nb\n"))
