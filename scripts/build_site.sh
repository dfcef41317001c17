#!/usr/bin/env bash
# Build both editions of the chapter site:
#   site/             public edition (no solutions), `mkdocs build --strict`
#   site-instructor/  instructor edition (with docs/solutions/), also strict
#
# Idempotent: each build cleans its output folder first. Run from anywhere;
# the script moves to the repository root, where pymdownx.snippets resolves
# the embedded exercises/ and solutions/ files.
#
# Env:
#   MKDOCS=/path/to/mkdocs      (default: .venv/bin/mkdocs if present, else mkdocs on PATH)
#   EXECUTE_NOTEBOOKS=1         execute docs/**/*.ipynb in place before building
#                               (the build itself renders notebooks as stored)
#   PUBLIC_ONLY=1               skip the instructor edition
set -euo pipefail

cd "$(dirname "$0")/.."
export NO_MKDOCS_2_WARNING=1

if [ -n "${MKDOCS:-}" ]; then
    :
elif [ -x .venv/bin/mkdocs ]; then
    MKDOCS=.venv/bin/mkdocs
elif command -v mkdocs >/dev/null 2>&1; then
    MKDOCS=mkdocs
else
    echo "build_site.sh: mkdocs not found. Install the docs extra: .venv/bin/pip install -e '.[docs]'" >&2
    exit 1
fi

if [ "${EXECUTE_NOTEBOOKS:-0}" = "1" ]; then
    JUPYTER="$(dirname "$MKDOCS")/jupyter"
    [ -x "$JUPYTER" ] || JUPYTER=jupyter
    mapfile -t notebooks < <(find docs -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' | sort)
    for nb in "${notebooks[@]}"; do
        echo "Executing $nb"
        "$JUPYTER" nbconvert --to notebook --execute --inplace "$nb"
    done
fi

echo "Building the public site into site/ (strict)"
"$MKDOCS" build --strict --clean -f mkdocs.yml

if [ "${PUBLIC_ONLY:-0}" != "1" ]; then
    echo "Building the instructor site into site-instructor/ (strict)"
    "$MKDOCS" build --strict --clean -f mkdocs.instructor.yml
fi

cat <<MSG

Built:
  site/              public edition (safe to publish)
MSG
if [ "${PUBLIC_ONLY:-0}" != "1" ]; then
    echo "  site-instructor/   instructor edition, with solutions (do NOT publish to students)"
fi
cat <<'MSG'

To view the public site:
  python -m http.server -d site 8000
  then open http://127.0.0.1:8000/
(the instructor edition: python -m http.server -d site-instructor 8001, then http://127.0.0.1:8001/)
MSG
