"""What periodic checkpoints cost across a run that fills a 1M-transition replay buffer, before and after.

A HalfCheetah-v5 agent (obs 17, action 6: 172 bytes a transition, 172 MB for 1M) has its buffer filled
synthetically, ``--interval`` transitions at a time, and after each block the run directory's
Checkpointer saves a full training checkpoint (keeping 3, as the default does), exactly as during
training. Measured per save: wall time, bytes written, and the disk use of ``checkpoints/``; then,
in a fresh process, loading the last checkpoint: its time, and the peak memory of the process while
loading (``ru_maxrss``) above what the loaded agent itself occupies afterwards (resident memory), next to
the size of the buffer's rows.

Both trees are measured in fresh processes, side by side in one run: ``--base REV`` (a git worktree)
and this working tree. ::

    .venv/bin/python benchmarks/checkpoint_io.py --base 0fb3a4d      # before the chunked buffer
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

CHILD = r'''
import json, resource, sys, time
from pathlib import Path
import numpy as np
from ddpgkit import DDPG, DDPGConfig

mode, run, n, interval = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cfg = DDPGConfig(buffer_size=1_000_000, total_steps=n + 1, learning_starts=n, checkpoint_interval=interval,
                 keep_checkpoints=3, eval_interval=0)

def files(root):
    return {str(p): p.stat().st_size for p in root.rglob("*") if p.is_file()} if root.exists() else {}

if mode == "run":
    from ddpgkit.training.callbacks import Checkpointer
    from ddpgkit.training.loop import Trainer
    agent = DDPG("HalfCheetah-v5", cfg)
    trainer = Trainer(agent)
    agent.trainer = trainer
    saver = Checkpointer(run, interval, 3)
    rng = np.random.default_rng(0)
    o, a = agent.obs_dim, agent.act_dim
    for start in range(0, n, interval):
        block = rng.standard_normal((interval, 2 * o + a + 1)).astype(np.float32)
        for row in block:
            agent.buffer.add(row[:o], row[o:o + a], float(row[o + a]), row[o + a + 1:], False, False)
        trainer.step += interval
        before = files(run / "checkpoints")
        t0 = time.perf_counter()
        saver.save(trainer)
        dt = time.perf_counter() - t0
        after = files(run / "checkpoints")
        written = sum(size for p, size in after.items() if p not in before)
        print(json.dumps({"step": trainer.step, "s": dt, "written": written, "disk": sum(after.values())}),
              flush=True)
else:
    import gc, os
    from ddpgkit.experiments.run import load_latest
    t0 = time.perf_counter()
    found = load_latest(run)  # (agents, paths, skipped) since issue 22; (agent, path, skipped) before
    agent = found[0][0] if isinstance(found[0], list) else found[0]
    dt = time.perf_counter() - t0
    gc.collect()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    resident = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert agent.buffer.size == min(n, 1_000_000)
    print(json.dumps({"s": dt, "extra": peak - resident, "buffer": agent.buffer.size * agent.buffer.width * 4}))
'''


def child(tree: Path, *args: str) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"), OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=env, timeout=3600)
    if p.returncode != 0:
        raise SystemExit(f"{tree}: {' '.join(args)} failed:\n{p.stderr[-3000:]}")
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default="HEAD~1", help="git revision to compare this working tree against")
    p.add_argument("--transitions", type=int, default=1_000_000)
    p.add_argument("--interval", type=int, default=10_000, help="transitions between checkpoints")
    a = p.parse_args()
    rev = subprocess.run(["git", "rev-parse", "--short", a.base], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="ddpgkit-ckpt-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(tmp / "tree"), a.base], cwd=ROOT, check=True,
                   capture_output=True)
    trees = {f"base {rev}": tmp / "tree", "this tree": ROOT}
    try:
        print(f"machine: {machine()}")
        print(f"{a.transitions:,} transitions of HalfCheetah-v5 (172 bytes each), a checkpoint every {a.interval:,}, "
              "keep 3; fresh process per tree\n")
        rows = []
        for name, tree in trees.items():
            run = tmp / name.replace(" ", "-")
            saves = child(tree, "run", str(run), str(a.transitions), str(a.interval))
            load = child(tree, "load", str(run), str(a.transitions), str(a.interval))[0]
            last = saves[-5:]
            extra = max(load["extra"], 0)  # resident memory can end a page above the peak's resolution
            rows.append([
                name, len(saves),
                f"{statistics.median(s['s'] for s in saves):.2f} / {max(s['s'] for s in saves):.2f}",
                f"{statistics.median(s['s'] for s in last):.2f}",
                f"{statistics.median(s['written'] for s in last) / 1e6:.1f}",
                f"{sum(s['written'] for s in saves) / 1e9:.2f}",
                f"{max(s['disk'] for s in saves) / 1e6:.0f}",
                f"{load['s']:.2f}", f"{extra / 1e6:.0f} ({extra / load['buffer']:.2f}× the buffer's rows)",
            ])
            print(f"{name}: done", flush=True)
            shutil.rmtree(run, ignore_errors=True)
        print()
        print(table(["tree", "saves", "save s, median / max", "save s, last 5",
                     "MB written a save, last 5", "GB written in all", "checkpoints/ MB, max",
                     "load s", "load: peak memory above the loaded agent, MB"], rows))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "tree")], cwd=ROOT, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
