"""Try grasp heights for the scripted expert on fresh LIBERO-Object layouts.

Usage: python scripts/tune_expert.py TASK [TASK ...] [--dz 0.0 0.02] --layouts 2
Prints success and steps per (task, grasp height, layout seed); without --dz, the
committed expert (each object's GRASP_DZ), printed as dz "committed".
"""
import argparse
import numpy as np
from vla_ch2.env import LiberoTask, quiet_robosuite
from vla_ch2.factory.expert import ScriptedExpert, ExpertConfig
from vla_ch2 import conventions as C

p = argparse.ArgumentParser()
p.add_argument("tasks", type=int, nargs="+")
p.add_argument("--dz", type=float, nargs="+", default=[None])
p.add_argument("--layouts", type=int, default=2)
p.add_argument("--first-layout", type=int, default=1000)
p.add_argument("--max-steps", type=int, default=280)
a = p.parse_args()
quiet_robosuite()
for t in a.tasks:
    task = LiberoTask("libero_object", t)
    target = task.env.env.obj_of_interest[0]
    for dz in a.dz:
        res = []
        for k in range(a.layouts):
            obs = task.reset(layout_seed=a.first_layout + k)
            for _ in range(C.NUM_WAIT_STEPS):
                obs, *_ = task.step(C.WAIT_ACTION)
            z0 = obs[f"{target}_pos"][2]
            cfg = ExpertConfig()
            if dz is not None:
                cfg.grasp_dz[target.rsplit("_",1)[0]] = dz
            ex = ScriptedExpert(target, cfg)
            done = False
            for s in range(a.max_steps):
                obs, r, done, info = task.step(ex.act(obs))
                if done: break
            res.append((bool(done), s + 1, ex.phase, round(float(z0), 3)))
        print(t, target, "committed" if dz is None else dz, res, flush=True)
    task.close()
