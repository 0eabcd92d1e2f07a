"""Actions per second of an exported ONNX policy in onnxruntime against DDPG.predict, one core (issue 27).

    .venv/bin/python benchmarks/export_speed.py [--repeats 7]

Pendulum-v1 agents (untrained: the speed of a forward pass does not depend on the weights) with 64-64 and 400-300
networks and observation normalization on, exported with `DDPG.export`; batch 1 (one env acting) and 1,024 (a batch
of states). torch and onnxruntime each on one thread. Each cell: the median over repeats of actions per second, and
the range.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from ddpgkit import DDPG, DDPGConfig
from ddpgkit.runtime import cpu_summary


def rate(fn, obs: np.ndarray, seconds: float = 0.5) -> float:
    fn(obs)  # warm-up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn(obs)
        n += 1
    return n * len(obs) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"cpu: {cpu_summary()}")
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}; one thread each\n")
    print("| network | batch | DDPG.predict actions/s | ONNX (onnxruntime) actions/s | ratio |")
    print("|---|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for hidden in ((64, 64), (400, 300)):
            agent = DDPG("Pendulum-v1", DDPGConfig(hidden=hidden, obs_norm=True))
            agent.observe(rng.standard_normal((100, 3)))
            path, _ = agent.export(Path(tmp) / f"p{hidden[0]}.onnx")
            so = ort.SessionOptions()
            so.intra_op_num_threads = so.inter_op_num_threads = 1
            session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            for batch in (1, 1024):
                obs = rng.standard_normal((batch, 3)).astype(np.float32)
                run = session.run  # bound now: the lambdas below read this network's session and agent
                predict = agent.predict
                ours = [rate(lambda o, run=run: run(["action"], {"obs": o}), obs) for _ in range(args.repeats)]
                ref = [rate(lambda o, predict=predict: predict(o), obs) for _ in range(args.repeats)]
                m_ours, m_ref = float(np.median(ours)), float(np.median(ref))
                print(f"| {hidden[0]}-{hidden[1]} | {batch:,} | {m_ref:,.0f} ({min(ref):,.0f}–{max(ref):,.0f}) | "
                      f"{m_ours:,.0f} ({min(ours):,.0f}–{max(ours):,.0f}) | {m_ours / m_ref:.2f} |")


if __name__ == "__main__":
    main()
