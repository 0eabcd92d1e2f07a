"""Run a policy exported by `ddpgkit export` with onnxruntime alone: numpy, gymnasium and onnxruntime, no torch."""
import json
import sys

import gymnasium as gym
import numpy as np
import onnxruntime as ort

policy = sys.argv[1] if len(sys.argv) > 1 else "runs/Pendulum-v1-s0/policy.onnx"
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
contract = json.load(open(policy.rsplit(".", 1)[0] + ".json"))  # spaces, key order, env id, checkpoint
session = ort.InferenceSession(policy, providers=["CPUExecutionProvider"])
env = gym.make(contract["env_id"])
obs, _ = env.reset(seed=seed)
total, done = 0.0, False
while not done:
    parts = obs if isinstance(obs, dict) else {"obs": obs}  # a Dict env: one input per key
    feed = {k: np.asarray(parts[k], np.float32).reshape(1, -1) for k in contract["inputs"]}
    action = session.run(["action"], feed)[0][0]  # already within the env's bounds
    obs, reward, terminated, truncated, _ = env.step(action)
    total += float(reward)
    done = terminated or truncated
print(f"return {total:.2f}")
