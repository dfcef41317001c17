"""Watch a model's descent onto its object: where the hand is, what the model commands, when it closes.

Two drivers, on official initial states of one task:

- ``--driver model``: the model drives, as in evaluation. Each step near the
  object gives the hand's offset from the object's origin (x, y, z in cm,
  world frame; the expert's aim is ``GRASP_XY`` from there) and the model's x, y, z and gripper commands, up to its
  seventh closing command. A hand that stops while the model still commands
  a descent is resting on something.
- ``--driver expert``: the scripted expert drives, and at each step of its
  descent and close the model is asked too: what it would do (greedy, as in
  evaluation; gripper +1 closes), and, given the expert's own six motion
  tokens, how likely it finds the expert's "open" and "close" (teacher
  forcing). This asks whether the model can tell from these images when to close.

    python scripts/probe_descent.py --task 1 --inits 0,3 --driver model --out probe.jsonl [--model DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _inits(text: str) -> list[int]:
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give initial-state indices like 0,3,7") from None
    if not values or any(not 0 <= v < 50 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give initial-state indices between 0 and 49, like 0,3,7")
    return values


def _gripper_tokens(policy, q01, q99) -> tuple[int, int]:
    """The action-token ids of "close" and "open" in the model's vocabulary."""
    from vla_ch2 import conventions as C

    vocab = policy.vla.config.vocab_size
    closed_open = np.zeros((2, 7))
    closed_open[1, 6] = 1.0  # training convention: 0 close, 1 open
    tokens = C.normalized_to_tokens(C.normalize_actions(closed_open, q01, q99), vocab)
    return int(tokens[0, 6]), int(tokens[1, 6])


def expert_forced(policy, image, prompt: str, expert_action, q01, q99, tokens) -> dict:
    """The model's greedy action, and its "close"/"open" probabilities given the expert's six motion tokens."""
    import torch
    from PIL import Image

    from vla_ch2 import conventions as C
    from vla_ch2.factory.teaching_model import to_training_convention

    free = C.postprocess_gripper(policy.predict(image, prompt, "libero_object"))  # env convention: +1 closes
    inputs = policy.processor(prompt, Image.fromarray(image))
    ids = inputs["input_ids"]
    empty = torch.full_like(ids[:, :1], policy.vla.config.empty_token_id)
    expert_tokens = C.normalized_to_tokens(
        C.normalize_actions(to_training_convention(np.asarray(expert_action)[None]), q01, q99), policy.vla.config.vocab_size)
    sequence = torch.cat([ids, empty, torch.as_tensor(expert_tokens[:, :6], dtype=ids.dtype)], dim=1)
    with torch.inference_mode():
        probabilities = torch.softmax(policy.vla.core(sequence, inputs["pixel_values"])[0, -1].float(), dim=-1)
    close_id, open_id = tokens
    return {"model_z": round(float(free[2]), 2), "model_gripper": round(float(free[6]), 2),
            "p_close_given_expert_motion": round(float(probabilities[close_id]), 3),
            "p_open_given_expert_motion": round(float(probabilities[open_id]), 3)}


def probe(task_id: int, inits: list[int], driver: str, model: str | None, max_steps: int = 120):
    """Yield one row per step near the object (see the module docstring)."""
    from vla_ch2 import conventions as C
    from vla_ch2.env import LiberoTask, quiet_robosuite
    from vla_ch2.factory.expert import ScriptedExpert
    from vla_ch2.policy import load_policy

    quiet_robosuite()
    policy = load_policy(model)
    stats = policy.vla.get_action_stats(policy.resolve_key("libero_object"))
    q01, q99 = np.asarray(stats["q01"]), np.asarray(stats["q99"])
    tokens = _gripper_tokens(policy, q01, q99)
    with LiberoTask("libero_object", task_id) as task:
        target = task.env.env.obj_of_interest[0]
        prompt = C.CANONICAL_PROMPT.format(instruction=task.language.lower())
        for init in inits:
            obs = task.reset(init_index=init)
            for _ in range(C.NUM_WAIT_STEPS):
                obs, _, _, _ = task.step(C.WAIT_ACTION)
            expert, closes = ScriptedExpert(target), 0
            for step in range(max_steps):
                label = expert.act(obs)  # the expert's phase and grasp point, also when the model drives
                # From the object's origin, not from the expert's grasp point: that has moved between versions.
                offset = (np.asarray(obs["robot0_eef_pos"], dtype=float)
                          - np.asarray(obs[f"{target}_pos"], dtype=float)) * 100
                image = C.center_crop(C.prepare_image(task.frame(obs)))
                row = {"task": task_id, "init": init, "driver": driver, "step": step,
                       "hand_minus_object_cm": np.round(offset, 1).tolist()}
                if driver == "model":
                    action = C.postprocess_gripper(policy.predict(image, prompt, "libero_object"))
                    row.update(command_xyz=np.round(action[:3], 2).tolist(), gripper=float(action[6]))
                    closes += action[6] > 0
                else:
                    action = label
                    row.update(expert_phase=expert.phase, expert_z=round(float(label[2]), 2),
                               expert_gripper=float(label[6]))
                    if expert.phase in ("descend", "close"):
                        row.update(expert_forced(policy, image, prompt, label, q01, q99, tokens))
                if offset[2] < 8:
                    yield row
                obs, _, done, _ = task.step(action)
                if done or closes > 6 or (driver == "expert" and expert.phase == "lift"):
                    break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", type=int, required=True)
    parser.add_argument("--inits", type=_inits, default=[0], help="official initial states, e.g. 0,3")
    parser.add_argument("--driver", choices=("model", "expert"), default="model")
    parser.add_argument("--model", default=None, help="a checkpoint directory (default: the embedded model)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not 0 <= args.task < 10:
        parser.error(f"--task {args.task}: libero_object has tasks 0 to 9")
    rows = list(probe(args.task, args.inits, args.driver, args.model))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    print(f"{len(rows)} steps appended to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
