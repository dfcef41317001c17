"""Shared fixtures: one LIBERO task and small checkpoints, built once per session."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from vla_ch2.policy import DEFAULT_MODEL


@pytest.fixture(scope="session")
def script():
    """Import ``scripts/<name>.py`` as a module: ``script("results_tables").MAKERS``."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def shipped_tokenizer() -> Path:
    path = Path(DEFAULT_MODEL) / "tokenizer.json"
    if not path.is_file():
        pytest.skip("the embedded checkpoint has no tokenizer.json yet")
    return path


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory, shipped_tokenizer) -> Path:
    """An untrained checkpoint in the teaching model's format, made by the tests."""
    from vla_ch2.factory.teaching_model import make_random_checkpoint

    return make_random_checkpoint(tmp_path_factory.mktemp("random_ckpt"), shipped_tokenizer, d_model=64,
                                  n_heads=2, n_layers=1, vision_dim=32)


@pytest.fixture(scope="session")
def object_task():
    """libero_object task 0, rendered headless (about 8 s to build)."""
    from vla_ch2.env import LiberoTask, quiet_robosuite

    quiet_robosuite()
    task = LiberoTask("libero_object", 0)
    yield task
    task.close()


@pytest.fixture(scope="session")
def teaching_policy():
    from vla_ch2.policy import load_policy

    if not (Path(DEFAULT_MODEL) / "model.safetensors").is_file():
        pytest.skip("the embedded teaching model has no weights yet")
    import torch

    torch.set_num_threads(1)
    return load_policy()
