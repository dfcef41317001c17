"""The chapter's three toggles, one per silent failure.

Each toggle changes one input to the model and nothing else: the image it
sees (``flip_image``), the prompt tokens it reads (``prompt_template``) or the
statistics that turn its output bins into robot actions (``unnorm_key``).
The defaults are the correct values; a drill flips exactly one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from vla_ch2.conventions import PROMPT_TEMPLATES


@dataclass(frozen=True)
class Toggles:
    """Loop settings that OpenVLA's training fixed, exposed so they can be broken.

    Parameters
    ----------
    flip_image : bool
        Rotate the render by 180 degrees before the model sees it (training did).
    prompt_template : str
        ``"canonical"`` (``In: ... ?\\nOut:``) or ``"rephrased"`` (the chapter's bad prompt).
    unnorm_key : str or None
        Statistics used to un-normalise the model's output; ``None`` means the
        suite's own key (``libero_object`` -> ``libero_object_no_noops``).
    """

    flip_image: bool = True
    prompt_template: str = "canonical"
    unnorm_key: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.flip_image, bool):
            raise ValueError(f"Toggles.flip_image must be True or False, got {self.flip_image!r}")
        if self.prompt_template not in PROMPT_TEMPLATES:
            raise ValueError(
                f"Toggles.prompt_template must be one of {sorted(PROMPT_TEMPLATES)}, "
                f"got {self.prompt_template!r}"
            )
        if self.unnorm_key is not None and (not isinstance(self.unnorm_key, str) or not self.unnorm_key.strip()):
            raise ValueError(
                f"Toggles.unnorm_key must be a non-empty statistics key such as 'libero_object' or "
                f"'bridge_orig', or None for the suite's own; got {self.unnorm_key!r}"
            )

    def prompt(self, instruction: str) -> str:
        """Build the prompt from the instruction, lower-cased as OpenVLA's evaluation does."""
        return PROMPT_TEMPLATES[self.prompt_template].format(instruction=instruction.lower())

    def key_for(self, suite: str) -> str:
        """The statistics key to request for ``suite``."""
        return self.unnorm_key or suite


#: The four runs of Exercise 2.x.1: the baseline and one toggle flipped in each.
DRILLS = {
    "baseline": Toggles(),
    "no_flip": Toggles(flip_image=False),
    "bad_prompt": Toggles(prompt_template="rephrased"),
    "bad_unnorm": Toggles(unnorm_key="bridge_orig"),
}

