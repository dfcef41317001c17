"""Graded tests for the chapter's coding exercises (2.x.1 and 2.x.2).

One module per exercise (``ex_2x1``, ``ex_2x2``). Each test is a plain
function marked with :func:`graded`, which gives it a name and a points
weight, as in Tedrake's manipulation grader. A test receives a
:class:`Context`: the reader's file loaded as a module, and a
:class:`Simulation` shared by every test of a check run.

A test fails by raising :class:`CheckFailed` with a hint for the reader. Any
other exception comes from the reader's code; :mod:`vla_ch2.checking.command` reports
it as that test's failure (type, message and the line of the reader's file),
never as a traceback.

Simulation tests hand the reader *spies*: a task and a policy that behave
exactly like :class:`vla_ch2.env.LiberoTask` and the loaded policy, record
every reset, simulator step and policy call, and build the real objects
only when the reader's code first touches them. A stub that raises
``NotImplementedError`` therefore fails in milliseconds, and the recorded
trace lets a test say *where* a loop departs from the chapter's.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

#: LIBERO task every simulation test runs (the chapter's: libero_object task 0).
SUITE, TASK_ID = "libero_object", 0

_order = itertools.count()


class CheckFailed(Exception):
    """A graded test's verdict: the message is the hint shown to the reader."""


class GraderSetupError(Exception):
    """The grader could not build the simulator or the model (not the reader's fault)."""


@dataclass(frozen=True)
class GradedTest:
    """One graded test: what it is called, what it is worth, the function that runs it."""

    name: str
    points: int
    func: Callable[["Context"], None]
    sim: bool = False
    order: int = 0


def graded(points: int, name: str, sim: bool = False):
    """Mark a function ``f(ctx)`` as a graded test worth ``points``.

    ``sim=True`` says the test runs LIBERO (slow, needs a model).
    """

    def mark(func):
        func.graded = GradedTest(name=name, points=points, func=func, sim=sim, order=next(_order))
        return func

    return mark


def collect(module) -> list[GradedTest]:
    """The graded tests defined in ``module``, in the order they were written."""
    tests = [v.graded for v in vars(module).values() if isinstance(getattr(v, "graded", None), GradedTest)]
    return sorted(tests, key=lambda t: t.order)


# --- The shared simulation --------------------------------------------------------------------

#: Live objects kept for the whole process: ("task", suite, id) and ("policy", model) -> object.
_LIVE: dict[tuple, Any] = {}
#: Results of reference runs, keyed by model and arguments; the library's answers never change.
_REFERENCE: dict[tuple, Any] = {}


def _close_live() -> None:
    for key, value in list(_LIVE.items()):
        if key[0] == "task":
            value.close()
    _LIVE.clear()


class Simulation:
    """One LIBERO task and one policy, built once on first use and shared by all tests.

    Parameters
    ----------
    model : str or None
        Checkpoint for the policy (``None``: the embedded teaching model).
    """

    def __init__(self, model: str | None = None):
        self.model = model or None
        self._error: str | None = None

    def _build(self, key: tuple, make: Callable[[], Any], what: str) -> Any:
        if key in _LIVE:
            return _LIVE[key]
        if self._error is not None:  # do not retry a failed build in every test of this run
            raise GraderSetupError(self._error)
        try:
            _LIVE[key] = make()
        except Exception as exc:  # noqa: BLE001 - reported, never a traceback
            first = str(exc).splitlines()[0] if str(exc) else ""
            self._error = f"could not {what} ({type(exc).__name__}: {first})"
            raise GraderSetupError(self._error) from None
        return _LIVE[key]

    def task(self):
        """The shared :class:`~vla_ch2.env.LiberoTask` (about 8 s to build the first time)."""

        def make():
            from vla_ch2.env import LiberoTask, quiet_robosuite

            quiet_robosuite()
            task = LiberoTask(SUITE, TASK_ID)
            # Registered after robosuite's own exit hook (which ends EGL), so it runs first.
            atexit.register(_close_live)
            return task

        return self._build(("task", SUITE, TASK_ID), make, f"start LIBERO {SUITE} task {TASK_ID}")

    def policy(self):
        """The shared policy, loaded from :attr:`model`."""

        def make():
            from vla_ch2.policy import load_policy

            return load_policy(self.model)

        label = self.model or "the embedded teaching model"
        return self._build(("policy", self.model), make,
                           f"load the model {label}; set VLA_CH2_MODEL to a checkpoint directory")

    def spies(self, max_steps: int, succeed_at: int | dict | None = None,
              close_at: dict | None = None) -> tuple["TaskSpy", "PolicySpy", "Trace"]:
        """A fresh task spy and policy spy sharing one :class:`Trace`.

        ``max_steps`` bounds the simulator steps the code under test may take;
        ``succeed_at`` makes the simulator report success (reward 1, ``done``)
        from that many policy steps on (simulator steps after the first policy
        call), as LIBERO does once the task is solved: in every episode, or, as
        a dict ``{initial state: steps}``, in those episodes only. ``close_at``
        (``{initial state: policy call}``) scripts a grasp: from that call on,
        the policy's gripper output is 0 (closed, in the model's convention).
        """
        trace = Trace()
        return TaskSpy(self, trace, max_steps, succeed_at), PolicySpy(self, trace, close_at), trace

    def reference(self, key: tuple, run: Callable[[], Any]) -> Any:
        """``run()`` once per process for this model and ``key``; later calls reuse the result."""
        full = (self.model, *key)
        if full not in _REFERENCE:
            try:
                _REFERENCE[full] = run()
            except GraderSetupError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise GraderSetupError(f"the reference run failed ({type(exc).__name__}: {exc}); "
                                       "please report this") from None
        return _REFERENCE[full]


# --- Spies --------------------------------------------------------------------------------------


@dataclass
class Trace:
    """Everything the code under test did to the simulator and the policy, in order.

    Events are tuples: ``("reset", init_index)``, ``("step", action, reward, done)`` and
    ``("predict", prompt, resolved_key, image_digest, rng, images)``; ``rng`` is the fingerprint of
    Python's and numpy's generators at the first policy call of an episode, else ``None``;
    ``images`` maps ``"flipped"`` and ``"unflipped"`` to the digests of the image
    :func:`~vla_ch2.conventions.prepare_image` makes from the current frame either way.
    """

    events: list = field(default_factory=list)
    #: The observation the simulator returned last (what the loop should look at next).
    last_obs: Any = None

    def episodes(self) -> list[list[tuple]]:
        """The events split at each reset (each list starts with its reset)."""
        out: list[list[tuple]] = []
        for event in self.events:
            if event[0] == "reset" or not out:
                out.append([])
            out[-1].append(event)
        return out


def rng_fingerprint() -> str:
    """A short digest of the state of Python's ``random`` and numpy's global generator."""
    digest = hashlib.sha1(repr(random.getstate()).encode())
    kind, keys, pos, *_ = np.random.get_state()
    digest.update(np.asarray(keys).tobytes())
    digest.update(str(pos).encode())
    return digest.hexdigest()[:16]


def seeded_fingerprint(seed: int) -> str:
    """The fingerprint right after seeding both generators with ``seed`` (state restored after)."""
    saved = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    value = rng_fingerprint()
    random.setstate(saved[0])
    np.random.set_state(saved[1])
    return value


def capitalised(text: str) -> str:
    """``text`` with a capital first letter (how :class:`TaskSpy` shows the instruction)."""
    return text[:1].upper() + text[1:]


def image_digest(image) -> str:
    """A short digest of an image's shape, type and pixels."""
    array = np.ascontiguousarray(np.asarray(image))
    return hashlib.sha1(f"{array.shape}{array.dtype}".encode() + array.tobytes()).hexdigest()[:16]


def scramble_generators(nonce: int) -> None:
    """Put Python's and numpy's generators in an arbitrary state, so only seeding can fix them."""
    random.seed(0x5EED0000 + nonce)
    np.random.seed((0x5EED + nonce) % 2**32)


class TaskSpy:
    """A :class:`~vla_ch2.env.LiberoTask` that records resets and steps, built on first use."""

    def __init__(self, sim: Simulation, trace: Trace, max_steps: int, succeed_at: int | dict | None = None):
        self._sim, self._trace, self._max_steps, self._steps = sim, trace, max_steps, 0
        self._succeed_spec, self._policy_steps = succeed_at, 0
        self._succeed_at = None if isinstance(succeed_at, dict) else succeed_at

    @property
    def _real(self):
        return self._sim.task()

    def reset(self, init_index: int | None = None, layout_seed: int | None = None) -> dict:
        index = None if init_index is None else int(init_index)
        self._trace.events.append(("reset", index if layout_seed is None else f"layout_seed={layout_seed}"))
        self._policy_steps = 0
        if isinstance(self._succeed_spec, dict):  # this episode's own, if any
            self._succeed_at = self._succeed_spec.get(index)
        self._trace.last_obs = self._real.reset(init_index=init_index, layout_seed=layout_seed)
        return self._trace.last_obs

    def step(self, action):
        self._steps += 1
        if self._steps > self._max_steps:
            raise CheckFailed(
                f"your code stepped the simulator more than {self._max_steps} times, more than this test "
                "asked for; does the loop stop after `steps` policy steps?"
            )
        obs, reward, done, info = self._real.step(action)
        episode = self._trace.episodes()[-1] if self._trace.events else []
        if any(e[0] == "predict" for e in episode):
            self._policy_steps += 1
        if self._succeed_at is not None and self._policy_steps >= self._succeed_at:
            reward, done = 1.0, True  # the task counts as solved from here on
        self._trace.last_obs = obs
        flat = tuple(float(a) for a in np.asarray(action, dtype=np.float64).reshape(-1))
        self._trace.events.append(("step", flat, float(reward), bool(done)))
        return obs, reward, done, info

    @property
    def language(self) -> str:
        """The task's instruction with a capital first letter, as many instructions are written.

        OpenVLA's evaluation lower-cases the instruction before it goes into the
        prompt; LIBERO-Object's happen to be lower case already, so without this
        a loop that forgot to lower-case would pass unseen.
        """
        return capitalised(self._real.language)

    def close(self) -> None:
        """Do nothing: the task is shared by every test of the check run."""

    def __getattr__(self, name: str):  # suite, language, frame, max_steps, init_states, env, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._real, name)


class PolicySpy:
    """The shared policy, recording each call's prompt, statistics key and image."""

    def __init__(self, sim: Simulation, trace: Trace, close_at: dict | None = None):
        self._sim, self._trace, self._close_at = sim, trace, close_at or {}

    @property
    def _real(self):
        return self._sim.policy()

    def predict(self, image, prompt, unnorm_key):
        real = self._real
        digest = image_digest(image)
        try:
            key = real.resolve_key(unnorm_key)
        except Exception:  # noqa: BLE001 - the real call below raises the policy's own error
            key = f"unresolvable {unnorm_key!r}"
        episode = self._trace.episodes()[-1] if self._trace.events else []
        calls = sum(1 for e in episode if e[0] == "predict")  # this episode's policy calls so far
        self._trace.events.append(("predict", prompt, key, digest, rng_fingerprint() if calls == 0 else None,
                                   self._prepared_digests()))
        action = real.predict(image, prompt, unnorm_key)
        close_from = self._close_at.get(episode[0][1]) if episode and episode[0][0] == "reset" else None
        if close_from is not None and calls >= close_from:
            action = np.array(action, dtype=np.float64, copy=True)
            action[-1] = 0.0  # the scripted grasp: closed, in the model's convention (1 = open)
        return action

    def _prepared_digests(self) -> dict:
        """Digests of the image prepared from the current frame with and without the flip."""
        from vla_ch2.conventions import prepare_image

        if self._trace.last_obs is None:
            return {}
        frame = self._sim.task().frame(self._trace.last_obs)
        return {name: image_digest(prepare_image(frame, flip)) for name, flip in (("flipped", True), ("unflipped", False))}

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._real, name)


# --- What a test sees ---------------------------------------------------------------------------


@dataclass
class Context:
    """What a graded test gets: the reader's module, the shared simulation, a scratch folder."""

    module: Any
    path: Path
    sim: Simulation
    scratch: Path

    def function(self, name: str) -> Callable:
        """The reader's function ``name``, or a failure saying it is missing."""
        func = getattr(self.module, name, None)
        if not callable(func):
            raise CheckFailed(f"{self.path.name} defines no function `{name}`; keep the names of the starter file")
        return func


def take(result, limit: int, what: str) -> list:
    """Up to ``limit`` items of what the reader's function returned (a list or an iterator)."""
    if result is None:
        raise CheckFailed(f"{what} returned None; it should yield (or return a list of) step records")
    try:
        iterator = iter(result)
    except TypeError:
        raise CheckFailed(f"{what} returned a {type(result).__name__}; it should yield (or return a list of) "
                          "step records") from None
    return list(itertools.islice(iterator, limit))


def model_from_environment() -> str | None:
    """The checkpoint simulation tests use: ``$VLA_CH2_MODEL`` if set, else the embedded model."""
    return os.environ.get("VLA_CH2_MODEL") or None
