"""The simulator box: a LIBERO task, rendered headless on the CPU.

One :class:`LiberoTask` holds one robosuite environment for one task of one
suite. Building it costs several seconds, so the loop and the sweep reuse it
across episodes (``reset`` then ``set_init_state``), and every reset leaves
nothing of the episode before it.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from vla_ch2 import conventions as C


def setup_rendering() -> None:
    """Choose headless rendering before MuJoCo is imported.

    EGL renders on the CPU through Mesa (or on a GPU where one exists). A user
    who set ``MUJOCO_GL`` (``osmesa`` is the usual fallback) keeps their choice.
    ``PYOPENGL_PLATFORM`` must agree with it.
    """
    backend = os.environ.setdefault("MUJOCO_GL", "egl")
    if backend in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)


class SimulatorUnavailable(RuntimeError):
    """LIBERO or its renderer cannot be used on this machine."""


def _import_libero():
    """Import LIBERO quietly and without any interactive prompt."""
    setup_rendering()
    # LIBERO asks on first import where to keep its config unless the file exists.
    config_dir = os.environ.setdefault("LIBERO_CONFIG_PATH", os.path.expanduser("~/.libero"))
    os.makedirs(config_dir, exist_ok=True)
    # robosuite warns three times at import that it has no private macro file;
    # an empty one (robosuite's defaults) says the same thing silently.
    import types

    sys.modules.setdefault("robosuite.macros_private", types.ModuleType("robosuite.macros_private"))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from libero.libero import benchmark, get_libero_path
            from libero.libero.envs import OffScreenRenderEnv
    except Exception as exc:  # pragma: no cover - depends on the machine
        raise SimulatorUnavailable(
            f"could not import LIBERO ({type(exc).__name__}: {exc}). Install the project "
            "(`make setup`), and if rendering fails set MUJOCO_GL=osmesa after "
            "`apt-get install libosmesa6`."
        ) from exc
    return benchmark, get_libero_path, OffScreenRenderEnv


def suite_names() -> list[str]:
    """Names of the LIBERO suites this library knows step limits for."""
    return sorted(C.MAX_STEPS)


@dataclass
class LiberoTask:
    """One LIBERO task with a live environment.

    Parameters
    ----------
    suite : str
        ``libero_object``, ``libero_spatial``, ``libero_goal``, ``libero_10`` or ``libero_90``.
    task_id : int
        Index of the task inside the suite.
    resolution : int
        Render size of the agentview camera (OpenVLA: 256).
    start_noise : float
        Spread (radians) of the arm's starting joints in a fresh layout
        (``reset(layout_seed=...)``); the official states' is
        ``C.START_JOINT_NOISE``. 0 starts every fresh layout at the home pose,
        as rounds 1 to 15 of the teaching model's demonstrations and
        validation did.
    """

    suite: str
    task_id: int
    resolution: int = C.RENDER_SIZE
    start_noise: float = C.START_JOINT_NOISE
    language: str = field(init=False)
    init_states: np.ndarray = field(init=False, repr=False)
    env: object = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.suite not in C.MAX_STEPS:
            raise ValueError(f"unknown suite {self.suite!r}; choose one of {suite_names()}")
        benchmark, get_libero_path, OffScreenRenderEnv = _import_libero()
        with contextlib.redirect_stdout(io.StringIO()):
            suite = benchmark.get_benchmark_dict()[self.suite]()
        if not 0 <= self.task_id < suite.n_tasks:
            raise ValueError(f"task {self.task_id} is out of range for {self.suite} (0..{suite.n_tasks - 1})")
        task = suite.get_task(self.task_id)
        self.language = task.language
        self.init_states = np.asarray(suite.get_task_init_states(self.task_id))
        bddl = os.path.join(get_libero_path("bddl_files"), task.problem_folder, task.bddl_file)
        self.env = OffScreenRenderEnv(
            bddl_file_name=bddl,
            camera_heights=self.resolution,
            camera_widths=self.resolution,
            camera_names=[C.CAMERA],  # one camera: the wrist view would double the render cost
            hard_reset=False,  # reuse the compiled scene at each reset: see _reset_simulator
        )
        self.env.seed(C.ENV_SEED)

    @property
    def max_steps(self) -> int:
        """Steps after the wait for this suite (OpenVLA's evaluation limit)."""
        return C.MAX_STEPS[self.suite]

    def reset(self, init_index: int | None = None, layout_seed: int | None = None) -> dict:
        """Start an episode from an official initial state, or from a fresh layout.

        ``init_index`` selects official initial state ``init_index`` (what
        evaluation uses). ``layout_seed`` instead lets LIBERO sample a new
        placement (what demonstrations use, so evaluation states stay unseen)
        and starts the arm as the official states do (:meth:`_arm_start`).
        """
        self._render_here()
        if layout_seed is not None:
            self.env.seed(layout_seed)
            self._reset_simulator()
            self.env.seed(C.ENV_SEED)
            return self.env.set_init_state(self._arm_start(layout_seed))
        self._reset_simulator()
        index = int(init_index or 0) % len(self.init_states)
        return self.env.set_init_state(self.init_states[index])

    def _arm_start(self, layout_seed: int) -> np.ndarray:
        """The sampled layout as a flat simulator state, the arm's joints moved as the official states' are.

        The official initial states start the arm at its home pose plus
        gaussian noise of ``C.START_JOINT_NOISE`` per joint; a fresh layout
        gets the same kind of start (``start_noise``), drawn from its own seed (the objects'
        placement is LIBERO's, unchanged). The state then goes through
        ``set_init_state``, as an official state does.
        """
        base = self.env.env
        state = base.sim.get_state().flatten()
        rng = np.random.default_rng(layout_seed)
        for robot in base.robots:
            joints = np.asarray(robot._ref_joint_pos_indexes)
            state[1 + joints] = np.asarray(robot.init_qpos) + rng.normal(0.0, self.start_noise, len(joints))
        return state

    def _reset_simulator(self) -> dict:
        """robosuite's soft reset, cleared of the two things it would carry over from the last episode.

        OpenVLA's evaluation rebuilds the simulator at every reset (robosuite's
        hard reset: parse the scene, compile it, make a renderer; about 3 s
        here). The task is built with ``hard_reset=False`` instead, which keeps
        the compiled scene (about 0.3 s), and clears what a rebuild clears:
        the gripper's running command (robosuite keeps it in the gripper model
        and adds to it every step) and MuJoCo's warm start
        (``qacc_warmstart``, the accelerations its constraint solver starts
        from). An initial state sets neither, and the warm start is cleared for
        the hard reset's sake too: without it, the first step after
        ``set_init_state`` depended on the episodes run before by about 1e-12,
        which a contact-rich episode grows until it changes what the policy
        sees. With both cleared, an episode depends on its initial state alone:
        the same positions and velocities at every step as after a hard reset,
        whatever ran before (``tests/test_env_reset.py``).
        """
        obs = self.env.reset()
        base = self.env.env
        for robot in base.robots:
            if robot.has_gripper:
                robot.gripper.current_action = np.zeros(robot.gripper.dof)
        base.sim.data.qacc_warmstart[:] = 0.0
        return obs

    def step(self, action) -> tuple[dict, float, bool, dict]:
        """Step the simulator with a 7-D OSC_POSE delta action in [-1, 1]."""
        self._render_here()
        return self.env.step(np.asarray(action, dtype=np.float64))

    def _render_here(self) -> None:
        """Make this task's OpenGL context the current one before anything renders.

        robosuite makes a renderer's context current only when it creates it, and
        MuJoCo draws with whatever context is current. With two tasks open in one
        process, the first task's scene was drawn with the second task's meshes and
        textures (its objects where they belong, looking like the other task's).
        """
        context = getattr(getattr(self.env.env, "sim", None), "_render_context_offscreen", None)
        if context is not None:
            context.gl_ctx.make_current()

    def frame(self, obs: dict) -> np.ndarray:
        """The raw agentview render (upside down, as robosuite returns it)."""
        return obs[f"{C.CAMERA}_image"]

    def close(self) -> None:
        """Release the renderer; robosuite prints EGL errors at exit otherwise."""
        with contextlib.suppress(Exception):
            self.env.close()

    def __enter__(self) -> "LiberoTask":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def die_with_parent() -> None:
    """Make this worker process end when the process that started it ends (Linux; elsewhere nothing).

    A sweep or drill worker holds a simulator and a model; if its parent is
    killed it would otherwise keep running episodes nobody collects.
    """
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _pool_worker(target, args: tuple) -> None:
    die_with_parent()
    target(*args)


@contextlib.contextmanager
def worker_pool(target, jobs, workers: int, *args):
    """Run ``target(job_queue, result_queue, *args)`` in ``workers`` spawned processes; yield the result queue.

    The job queue holds ``jobs`` and then one ``None`` per worker (the sign to
    stop). Each worker ends when the process that started it ends
    (:func:`die_with_parent`); leaving the block joins them, terminating any
    that do not stop within seconds. Sweeps, parallel drills and the factory's
    validation share it: each worker owns a simulator and a model.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    job_queue, results = ctx.Queue(), ctx.Queue()
    for job in jobs:
        job_queue.put(job)
    for _ in range(workers):
        job_queue.put(None)
    procs = [ctx.Process(target=_pool_worker, args=(target, (job_queue, results, *args))) for _ in range(workers)]
    for proc in procs:
        proc.start()
    try:
        yield results
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()


def pool_to_jsonl(target, jobs: list, workers: int, out, *args, name: str = "a worker") -> list[dict]:
    """Run ``jobs`` in a :func:`worker_pool`, appending each result to ``out`` as one JSON line as it arrives.

    Returns the new rows (each is also printed). A result ``{"error": ...}``
    stops the run with a ``RuntimeError`` that starts with ``name``; the lines
    written before it stay, so a rerun that skips them resumes.
    """
    import json

    rows = []
    if not jobs:
        return rows
    with worker_pool(target, jobs, workers, *args) as results, open(out, "a", encoding="utf-8") as handle:
        for _ in jobs:
            row = results.get()
            if "error" in row:
                raise RuntimeError(f"{name} failed: {row['error']}")
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def quiet_robosuite() -> None:
    """Silence robosuite's macro-file warnings, which say nothing to a reader."""
    import logging

    logging.getLogger("robosuite").setLevel(logging.ERROR)
    if not sys.warnoptions:
        import warnings

        warnings.filterwarnings("ignore", category=DeprecationWarning)
