"""The GPU path fails fast and clearly where it cannot work: no hub, no GPU for a 7B checkpoint.

These run on the CPU machines CI uses; what they check is that a reader who
types the chapter's command for OpenVLA-7B gets one clear message in seconds
instead of minutes of retries or a silent float32 load on the CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vla_ch2.policy import CPU_WEIGHTS_LIMIT, ModelLoadError, load_policy

REPO = Path(__file__).resolve().parents[1]
OPENVLA = "openvla/openvla-7b-finetuned-libero-object"


def _no_cuda() -> bool:
    import torch

    return not torch.cuda.is_available()


def test_a_hub_id_without_a_hub_fails_in_seconds_with_one_message(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    started = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        load_policy(OPENVLA, trust_remote_code=True)
    assert time.perf_counter() - started < 10
    message = str(info.value)
    assert "cannot be reached" in message and "huggingface-cli download" in message
    assert "--trust-remote-code" not in message  # advice already followed is not repeated


def test_the_command_line_says_the_same_without_a_traceback(tmp_path):
    env = dict(os.environ, HF_ENDPOINT="http://127.0.0.1:9")
    done = subprocess.run([sys.executable, "-m", "vla_ch2.cli", "episode", "--model", OPENVLA, "--trust-remote-code",
                           "--out", str(tmp_path / "run.jsonl")], capture_output=True, text=True, env=env,
                          timeout=120, cwd=REPO)
    assert done.returncode == 2
    assert "cannot be reached" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.skipif(not _no_cuda(), reason="the refusal is for machines without a CUDA GPU")
def test_a_large_checkpoint_is_refused_on_a_cpu_unless_asked_for(tmp_path):
    checkpoint = tmp_path / "big"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"model_type": "openvla"}), encoding="utf-8")
    with open(checkpoint / "model-00001-of-00002.safetensors", "wb") as handle:
        handle.truncate(CPU_WEIGHTS_LIMIT + 1024**3)  # sparse: a size on paper, no disk used
    with pytest.raises(ModelLoadError) as info:
        load_policy(str(checkpoint))
    assert "GiB of weights" in str(info.value) and "--device cpu" in str(info.value)
    with pytest.raises(ValueError) as later:  # asked for: it goes on to load, and Transformers rejects the fake
        load_policy(str(checkpoint), device="cpu")
    assert not isinstance(later.value, ModelLoadError) and "GiB of weights" not in str(later.value)
    assert "openvla" in str(later.value)  # Transformers' own words about the checkpoint's model type


def test_the_openvla_extra_imports_and_loads_an_openvla_shaped_checkpoint(tmp_path):
    """With ``.[openvla]`` installed, remote code that imports timm and torchvision (as OpenVLA's does) loads."""
    import shutil

    import numpy as np

    pytest.importorskip("timm")
    pytest.importorskip("torchvision")
    source = REPO / "vla_ch2" / "checkpoints" / "teaching-vla-libero-object"
    checkpoint = tmp_path / "openvla-shaped"
    shutil.copytree(source, checkpoint)
    modeling = checkpoint / "modeling_teachvla.py"
    text = modeling.read_text(encoding="utf-8")
    modeling.write_text(text.replace("import numpy as np", "import numpy as np\nimport timm  # as OpenVLA's prismatic code\n"
                                     "import torchvision.transforms  # ditto", 1), encoding="utf-8")
    policy = load_policy(str(checkpoint))
    action = policy.predict(np.full((224, 224, 3), 127, dtype=np.uint8), "In: What action should the robot take to "
                            "pick up the alphabet soup and place it in the basket?\nOut:", "libero_object")
    assert action.shape == (7,) and np.all(np.isfinite(action))
    import timm
    import torchvision

    assert timm.__version__ == "0.9.10" and torchvision.__version__.startswith("0.28")
