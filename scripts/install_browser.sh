#!/usr/bin/env bash
# Install what tests/test_browser.py needs:
#   * Debian's chromium (apt-get; Playwright is never allowed to download a browser)
#   * the Python `playwright` package, into the project's venv
#
# Usage:  bash scripts/install_browser.sh            (as root, or with sudo available)
# Env:    PYTHON=/path/to/python  (default: .venv/bin/python if present, else python3)
set -euo pipefail

cd "$(dirname "$0")/.."

# Never let Playwright fetch its own browser builds.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install_browser.sh: need root (or sudo) for apt-get" >&2
        exit 1
    fi
fi

if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo '/usr/bin/chromium')"
else
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core
fi

if [ -n "${PYTHON:-}" ]; then
    PY="$PYTHON"
elif [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
else
    PY=python3
fi

if "$PY" -c "import playwright" >/dev/null 2>&1; then
    echo "playwright already installed in $PY"
else
    "$PY" -m pip install "playwright>=1.40"
fi

echo
echo "Done. /usr/bin/chromium: $(/usr/bin/chromium --version 2>/dev/null || echo missing)"
echo "Run the browser test with:  $PY -m pytest tests/test_browser.py -q"
