"""The chapter site: both editions build strictly, and no solution reaches the public one.

The public site (``mkdocs.yml``) excludes ``docs/solutions/``; the instructor
site (``mkdocs.instructor.yml``, ``INHERIT: mkdocs.yml``) builds it, embedding
the real files under ``solutions/`` with ``pymdownx.snippets``. These tests
build both once per module into a temporary folder and then read every built
file: the public build must contain no solution marker, no distinctive line
of any solution file and no solution page; the instructor build must contain
all of them (which also proves the leak detector can see a leak).
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: The Python modules the site needs (the ``docs`` extra of pyproject.toml).
DOCS_MODULES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "mkdocs_jupyter", "pymdownx")

#: Solution files, the instructor page that embeds each, and its marker line.
SOLUTIONS = {
    "solutions/failure_drills.py": ("solutions/2x1-failure-drills", "# SOLUTION"),
    "solutions/sweep.py": ("solutions/2x2-sweep", "# SOLUTION"),
    "solutions/worksheet.md": ("solutions/2x3-worksheet", "<!-- SOLUTION -->"),
    "solutions/sentences.txt": ("solutions/2x4-sentences", "# SOLUTION"),
}
MARKERS = ("# SOLUTION", "<!-- SOLUTION -->")

#: Exercise starter files and the public page that embeds each.
EXERCISES = {
    "exercises/failure_drills.py": "exercises/2x1-failure-drills",
    "exercises/sweep.py": "exercises/2x2-sweep",
    "exercises/worksheet.md": "exercises/2x3-worksheet",
    "exercises/sentences.txt": "exercises/2x4-sentences",
}

#: Modules the API reference should document once they exist.
EXPECTED_API_MODULES = (
    "conventions", "toggles", "policy", "loop", "logs", "drills", "predicates",
    "sweep", "plots", "taxonomy", "checking.command", "checking.sentences", "checking.worksheet", "checking.agreement",
    "factory.teaching_model", "factory.expert", "factory.demos",
)

#: A line must be at least this long (whitespace collapsed) to count as distinctive.
MIN_DISTINCTIVE = 12


def _missing_docs_modules() -> list[str]:
    missing = []
    for name in DOCS_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


def _build(config: str, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-f", config, "-d", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """Build the public and the instructor site once for this module."""
    missing = _missing_docs_modules()
    if missing:
        pytest.skip(
            f"mkdocs toolchain not installed (missing: {', '.join(missing)}); "
            "install the docs extra: .venv/bin/pip install -e '.[docs]'"
        )
    root = tmp_path_factory.mktemp("sites")
    out = {}
    for name, config in (("public", "mkdocs.yml"), ("instructor", "mkdocs.instructor.yml")):
        target = root / name
        result = _build(config, target)
        assert result.returncode == 0, (
            f"`mkdocs build --strict -f {config}` failed (exit {result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
        out[name] = target
    return out


# --- reading built files ---------------------------------------------------------

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _strings_in_json(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings_in_json(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings_in_json(item)


def _views(path: Path) -> list[str]:
    """The raw text of a built file plus its tag-stripped, unescaped text (and JSON strings)."""
    raw = path.read_bytes().decode("utf-8", errors="ignore")
    views = [raw, html.unescape(_TAG.sub("", raw))]
    if path.suffix == ".json":
        try:
            strings = list(_strings_in_json(json.loads(raw)))
        except ValueError:
            strings = []
        views += strings + [html.unescape(_TAG.sub("", s)) for s in strings]
    return views


def _corpus(site: Path) -> dict[str, str]:
    """Relative path -> every view of that file, joined and whitespace-collapsed."""
    corpus = {}
    for path in sorted(site.rglob("*")):
        if path.is_file() and path.suffix not in {".png", ".jpg", ".jpeg", ".gif", ".webp", ".ico", ".woff", ".woff2", ".gz"}:
            corpus[path.relative_to(site).as_posix()] = "\n".join(_norm(v) for v in _views(path))
    return corpus


@pytest.fixture(scope="module")
def public_corpus(builds):
    return _corpus(builds["public"])


@pytest.fixture(scope="module")
def instructor_corpus(builds):
    return _corpus(builds["instructor"])


def _public_source_lines() -> set[str]:
    """Every line the public site may legitimately show (so it cannot be a 'solution line')."""
    lines = set()
    sources = [*REPO.glob("vla_ch2/**/*.py"), *REPO.glob("exercises/**/*"), REPO / "mkdocs.yml"]
    sources += [p for p in REPO.glob("docs/**/*") if "solutions" not in p.relative_to(REPO / "docs").parts]
    for path in sources:
        if path.is_file():
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            lines.update(_norm(line) for line in text.splitlines())
    return lines


def _distinctive_lines(solution: Path, public_lines: set[str]) -> list[str]:
    out = []
    for line in solution.read_text(encoding="utf-8").splitlines():
        line = _norm(line)
        if line in MARKERS or len(line) < MIN_DISTINCTIVE or not re.search(r"[A-Za-z]", line):
            continue
        if line in public_lines or line in out:
            continue
        out.append(line)
    return out


@pytest.fixture(scope="module")
def distinctive(instructor_corpus):
    """Per solution file, its distinctive lines that the instructor build does show.

    Lines the instructor build cannot be seen to contain (e.g. text that
    Markdown would rewrite) are dropped, so every remaining line is one the
    leak check is known to detect.
    """
    public_lines = _public_source_lines()
    haystack = "\n".join(instructor_corpus.values())
    found = {}
    for rel in SOLUTIONS:
        path = REPO / rel
        assert path.is_file(), f"{rel} is missing: the instructor site embeds it"
        lines = [line for line in _distinctive_lines(path, public_lines) if line in haystack]
        assert lines, (
            f"no distinctive line of {rel} was found in the instructor build, so a leak of it "
            "could not be detected; the solution needs at least one line of its own"
        )
        found[rel] = lines
    return found


# --- the tests ---------------------------------------------------------------------


def test_both_editions_build_strictly(builds):
    assert (builds["public"] / "index.html").is_file()
    assert (builds["instructor"] / "index.html").is_file()


def test_instructor_nav_is_public_nav_plus_solutions(builds):
    from mkdocs.utils.yaml import yaml_load

    with open(REPO / "mkdocs.yml", encoding="utf-8") as handle:
        public = yaml_load(handle)
    with open(REPO / "mkdocs.instructor.yml", encoding="utf-8") as handle:
        instructor = yaml_load(handle)
    assert instructor["nav"][:-1] == public["nav"], "mkdocs.instructor.yml's nav drifted from mkdocs.yml's"
    (last,) = instructor["nav"][-1].items()
    assert last[0] == "Solutions"
    assert all(path.startswith("solutions/") for item in last[1] for path in item.values())
    assert "solutions/" in public["exclude_docs"]
    assert instructor["site_dir"] == "site-instructor"


def test_public_build_has_no_solution_page(builds, public_corpus):
    site = builds["public"]
    leaked = [p.relative_to(site).as_posix() for p in site.rglob("*") if "solutions" in p.relative_to(site).parts]
    assert not leaked, f"solution pages in the public build: {leaked}"
    for rel, text in public_corpus.items():
        assert not re.search(r"""href=["'][^"']*solutions/""", text), f"{rel} links to a solution page"
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    locations = [doc["location"] for doc in index["docs"]]
    assert not [loc for loc in locations if loc.startswith("solutions")], "solutions are in the search index"
    sitemap = (site / "sitemap.xml").read_text(encoding="utf-8")
    assert "/solutions/" not in sitemap


@pytest.mark.parametrize("marker", MARKERS)
def test_public_build_has_no_solution_marker(public_corpus, marker):
    hits = [rel for rel, text in public_corpus.items() if marker in text]
    assert not hits, f"solution marker {marker!r} found in the public build: {hits}"


@pytest.mark.parametrize("solution", sorted(SOLUTIONS))
def test_public_build_has_no_solution_line(public_corpus, distinctive, solution):
    leaks = []
    for line in distinctive[solution]:
        for rel, text in public_corpus.items():
            if line in text:
                leaks.append(f"{rel}: {line!r}")
    assert not leaks, f"lines of {solution} leaked into the public build:\n" + "\n".join(leaks[:20])


@pytest.mark.parametrize("solution", sorted(SOLUTIONS))
def test_instructor_build_shows_each_solution(builds, instructor_corpus, distinctive, solution):
    page, marker = SOLUTIONS[solution]
    rel = f"{page}/index.html"
    assert (builds["instructor"] / rel).is_file(), f"instructor page {rel} missing"
    text = instructor_corpus[rel]
    first = (REPO / solution).read_text(encoding="utf-8").splitlines()[0].strip()
    assert first == marker, f"{solution} should start with the marker line {marker!r}, starts with {first!r}"
    assert marker in text, f"marker {marker!r} of {solution} not shown on {rel}"
    missing = [line for line in distinctive[solution] if line not in text]
    assert not missing, f"{rel} does not show these lines of {solution}: {missing[:5]}"


@pytest.mark.parametrize("exercise", sorted(EXERCISES))
def test_exercise_pages_embed_the_real_starter_files(builds, public_corpus, exercise):
    rel = f"{EXERCISES[exercise]}/index.html"
    assert (builds["public"] / rel).is_file()
    lines = [_norm(line) for line in (REPO / exercise).read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if len(line) >= 8 and not line.startswith("<!--")]
    assert lines, f"{exercise} is empty"
    text = public_corpus[rel]
    missing = [line for line in lines if line not in text]
    assert not missing, f"{rel} does not show {exercise} verbatim; missing e.g. {missing[:3]}"


def test_exercise_pages_show_the_check_commands(public_corpus):
    commands = {
        "exercises/2x1-failure-drills": "vla-ch2 check 2.x.1 exercises/failure_drills.py",
        "exercises/2x2-sweep": "vla-ch2 check 2.x.2 exercises/sweep.py",
        "exercises/2x3-worksheet": "vla-ch2 check 2.x.3 exercises/worksheet.md",
        "exercises/2x4-sentences": "vla-ch2 check 2.x.4 exercises/sentences.txt",
    }
    for page, command in commands.items():
        assert command in public_corpus[f"{page}/index.html"], f"{page} does not show `{command}`"


def test_api_reference_documents_its_modules(builds):
    source = (REPO / "docs" / "reference" / "api.md").read_text(encoding="utf-8")
    listed = re.findall(r"^::: (vla_ch2[\w.]*)", source, flags=re.M)
    assert listed, "docs/reference/api.md documents no module"
    page = (builds["public"] / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    for module in listed:
        assert f'id="{module}"' in page, f"mkdocstrings rendered nothing for {module}"
    not_listed = [
        m for m in EXPECTED_API_MODULES
        if (REPO / "vla_ch2" / f"{m.replace('.', '/')}.py").is_file() and f"vla_ch2.{m}" not in listed
    ]
    assert not not_listed, f"modules that exist but are not in docs/reference/api.md: {not_listed}"


def test_build_script_prints_how_to_open_the_site():
    script = (REPO / "scripts" / "build_site.sh").read_text(encoding="utf-8")
    assert "mkdocs.instructor.yml" in script and "--strict" in script
    assert "python -m http.server -d site 8000" in script


def test_public_site_is_light_and_keeps_raw_logs_out(builds):
    site = builds["public"]
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    assert size < 20 * 1024**2, f"the public site is {size / 1024**2:.1f} MB; the goal is under 20 MB"
    assert not list(site.rglob("*.jsonl")), "raw step logs belong in the repository, not on the site"


@pytest.mark.parametrize("name,shown", [
    ("inside-predict-action", "action tokens are ids"),
    ("reading-drill-logs", "steps per run"),
    ("how-many-episodes", "episodes for 80 %"),
])
def test_notebook_pages_show_real_outputs_and_offer_the_notebook(builds, name, shown):
    page = builds["public"] / "notebooks" / name / "index.html"
    html = page.read_text(encoding="utf-8")
    assert shown in html, f"{name}: the page does not show the notebook's outputs"
    assert (page.parent / f"{name}.ipynb").is_file() and f"{name}.ipynb" in html, f"{name}: no download"


@pytest.mark.parametrize("name", ["inside-predict-action", "reading-drill-logs", "how-many-episodes"])
def test_links_inside_notebook_pages_resolve(builds, name):
    """Notebook markdown is not rewritten by MkDocs: its relative links must already be the site's."""
    page = builds["public"] / "notebooks" / name / "index.html"
    hrefs = re.findall(r'href="([^"#:]+)(?:#[^"]*)?"', page.read_text(encoding="utf-8"))
    for href in hrefs:
        if href.startswith(("http", "mailto", "//")) or href.endswith((".css", ".js")):
            continue
        target = (page.parent / href).resolve()
        assert target.exists() or (target / "index.html").exists(), f"{name}: broken link {href}"
