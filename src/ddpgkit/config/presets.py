"""The DDPGs of the literature by name, and the project's own measured preset (``--preset NAME``).

Every library ships a different "DDPG"; each entry here is a dict of the :class:`~ddpgkit.config.ddpg.DDPGConfig`
fields it sets over the general defaults, and :data:`PRESET_SOURCES` says where its values come from.
"""

from __future__ import annotations

from typing import Any

# The DDPGs of the literature by name. Every library ships a different "DDPG"; these say which.
_LILLICRAP2015 = dict(
    hidden=(400, 300), activation="relu", critic_action_layer=1, final_layer_init=3e-3,
    actor_lr=1e-4, critic_lr=1e-3, critic_weight_decay=1e-2, gamma=0.99, tau=0.001, batch_size=64,
    buffer_size=1_000_000, learning_starts=0, noise="ou", noise_scale=0.2, ou_theta=0.15, ou_dt=1e-2,
    policy_frequency=1, total_steps=1_000_000, eval_interval=10_000, eval_episodes=10,
)
#: The named configurations (``--preset NAME``): each a dict of the fields it sets over the general defaults.
PRESETS: dict[str, dict[str, Any]] = {
    # Solves Pendulum-v1 (10-episode deterministic eval >= -200) well within 20k steps on every seed
    # measured (benchmarks/pendulum.py): small networks, an early start (500 random steps), a faster
    # target (τ 0.01) and PyTorch's default last-layer init reach -200 after 2000-3000 steps
    # (benchmarks/time_to_solve.py). The update is the whole cost of a step here, so fewer steps and
    # smaller networks are what make it fast.
    "pendulum": dict(
        total_steps=20_000, hidden=(64, 64), learning_starts=500, gamma=0.98, actor_lr=1e-3, critic_lr=1e-3,
        batch_size=256, tau=0.01, final_layer_init=0.0, noise="gaussian", noise_scale=0.1, buffer_size=200_000,
        eval_interval=2_000, eval_episodes=10,
    ),
    "lillicrap2015": _LILLICRAP2015,
    # the TD3 paper's re-tuned DDPG ("OurDDPG", its section 6 and table 3)
    "fujimoto2018": dict(
        hidden=(400, 300), activation="relu", critic_action_layer=0, final_layer_init=0.0, actor_lr=1e-3,
        critic_lr=1e-3, critic_weight_decay=0.0, gamma=0.99, tau=0.005, batch_size=100, buffer_size=1_000_000,
        learning_starts=10_000, noise="gaussian", noise_scale=0.1, policy_frequency=1, total_steps=1_000_000,
        eval_interval=5_000, eval_episodes=10,
    ),
    # Stable-Baselines3 2.9's DDPG class defaults (SB3 itself adds no exploration noise; this preset adds
    # the rl-baselines3-zoo's usual Gaussian 0.1)
    "sb3": dict(
        hidden=(400, 300), activation="relu", critic_action_layer=0, final_layer_init=0.0, actor_lr=1e-3,
        critic_lr=1e-3, critic_weight_decay=0.0, gamma=0.99, tau=0.005, batch_size=256, buffer_size=1_000_000,
        learning_starts=100, noise="gaussian", noise_scale=0.1, policy_frequency=1,
    ),
    # CleanRL's ddpg_continuous_action.py
    "cleanrl": dict(
        hidden=(256, 256), activation="relu", critic_action_layer=0, final_layer_init=0.0, actor_lr=3e-4,
        critic_lr=3e-4, critic_weight_decay=0.0, gamma=0.99, tau=0.005, batch_size=256, buffer_size=1_000_000,
        learning_starts=25_000, noise="gaussian", noise_scale=0.1, policy_frequency=2, total_steps=1_000_000,
        eval_interval=5_000, eval_episodes=10,
    ),
    # TD3 (Fujimoto et al. 2018): the paper's settings — its DDPG above with twin critics, target policy smoothing
    # and delayed actor updates (its section 6.1 and the authors' TD3.py)
    "fujimoto2018-td3": dict(
        hidden=(400, 300), activation="relu", critic_action_layer=0, final_layer_init=0.0, actor_lr=1e-3,
        critic_lr=1e-3, critic_weight_decay=0.0, gamma=0.99, tau=0.005, batch_size=100, buffer_size=1_000_000,
        learning_starts=10_000, noise="gaussian", noise_scale=0.1, policy_frequency=2, n_critics=2,
        target_noise=0.2, target_noise_clip=0.5, total_steps=1_000_000, eval_interval=5_000, eval_episodes=10,
    ),
    # Stable-Baselines3 2.9's TD3 class defaults (read from the installed stable_baselines3 2.9.2's TD3 signature
    # and TD3Policy: net_arch 400-300, lr 1e-3, batch 256, 100 random steps, policy_delay 2, target_policy_noise
    # 0.2, target_noise_clip 0.5; tests/test_td3.py checks them where SB3 is installed; SB3 itself adds no
    # exploration noise, this preset adds the zoo's usual Gaussian 0.1)
    "sb3-td3": dict(
        hidden=(400, 300), activation="relu", critic_action_layer=0, final_layer_init=0.0, actor_lr=1e-3,
        critic_lr=1e-3, critic_weight_decay=0.0, gamma=0.99, tau=0.005, batch_size=256, buffer_size=1_000_000,
        learning_starts=100, noise="gaussian", noise_scale=0.1, policy_frequency=2, n_critics=2, target_noise=0.2,
        target_noise_clip=0.5,
    ),
    # CleanRL's td3_continuous_action.py
    "cleanrl-td3": dict(
        hidden=(256, 256), activation="relu", critic_action_layer=0, final_layer_init=0.0, actor_lr=3e-4,
        critic_lr=3e-4, critic_weight_decay=0.0, gamma=0.99, tau=0.005, batch_size=256, buffer_size=1_000_000,
        learning_starts=25_000, noise="gaussian", noise_scale=0.1, policy_frequency=2, n_critics=2,
        target_noise=0.2, target_noise_clip=0.5, total_steps=1_000_000, eval_interval=5_000, eval_episodes=10,
    ),
    # DDPG + HER (Andrychowicz et al. 2017) as OpenAI baselines' her/experiment/config.py sets it: 3×256, Adam 1e-3,
    # batch 256, polyak 0.95 (τ = 0.05), action L2 1.0, 30% random actions and Gaussian 0.2, observations and goals
    # normalized and clipped at 5, future strategy with k = 4; γ = 1 − 1/T for Fetch's T = 50
    "andrychowicz2017-her": dict(
        hidden=(256, 256, 256), activation="relu", critic_action_layer=0, final_layer_init=0.0, actor_lr=1e-3,
        critic_lr=1e-3, critic_weight_decay=0.0, gamma=0.98, tau=0.05, batch_size=256, buffer_size=1_000_000,
        learning_starts=256, noise="gaussian", noise_scale=0.2, random_action_prob=0.3, action_l2=1.0,
        obs_norm=True, obs_clip=5.0, her="future", her_k=4, policy_frequency=1, total_steps=100_000,
        eval_interval=5_000, eval_episodes=10,
    ),
    # the name this preset had before the literature's DDPGs were named: Lillicrap et al.'s values
    "mujoco": _LILLICRAP2015,
}

#: Where each preset's values come from (a paper, a library's defaults, or a measurement here).
PRESET_SOURCES: dict[str, str] = {
    "pendulum": "own measurement: solves Pendulum-v1 in 2000-4000 steps on every seed (benchmarks/README.md)",
    "lillicrap2015": "Lillicrap et al. 2015, section 7 and supplement: 400-300, action at the critic's 2nd hidden "
                     "layer, critic L2 1e-2, last layers ±3e-3 (others: fan-in uniform, PyTorch's default), OU θ 0.15 "
                     "σ 0.2, batch 64, τ 1e-3; batch normalisation is left out. The paper gives no OU time step: "
                     "dt 1e-2 is OpenAI baselines' and Stable-Baselines3's OrnsteinUhlenbeckActionNoise default (noise "
                     "correlated over ~1/(θ dt) = 667 steps, from 0 at each episode's start); the paper's form "
                     "x += θ(μ − x) + σε is dt = 1 (--ou-dt 1: ~7 steps, stationary std 1.9σ)",
    "fujimoto2018": "Fujimoto et al. 2018 (TD3 paper), 'OurDDPG': 400-300, action at the input, Adam 1e-3, batch 100, "
                    "τ 5e-3, Gaussian 0.1, 10k random steps (the paper used 1k on some tasks)",
    "sb3": "Stable-Baselines3 2.9 DDPG defaults (400-300, Adam 1e-3, batch 256, τ 5e-3, 100 random steps) with the "
           "zoo's Gaussian 0.1 noise",
    "cleanrl": "CleanRL ddpg_continuous_action.py: 256-256, Adam 3e-4, batch 256, τ 5e-3, Gaussian 0.1, 25k random "
               "steps, actor and targets every 2nd update",
    "fujimoto2018-td3": "Fujimoto et al. 2018 (TD3 paper), TD3: 400-300, Adam 1e-3, batch 100, τ 5e-3, Gaussian "
                        "0.1, twin critics, target noise 0.2 clipped at 0.5, actor and targets every 2nd update; 10k "
                        "random steps as the paper gives for HalfCheetah and Ant (1k for the other tasks: "
                        "--learning-starts 1000)",
    "sb3-td3": "Stable-Baselines3 2.9 TD3 defaults (400-300, Adam 1e-3, batch 256, τ 5e-3, 100 random steps, "
               "policy_delay 2, target noise 0.2 clipped at 0.5) with the zoo's Gaussian 0.1 noise",
    "cleanrl-td3": "CleanRL td3_continuous_action.py: 256-256, Adam 3e-4, batch 256, τ 5e-3, Gaussian 0.1, 25k random "
                   "steps, target noise 0.2 clipped at 0.5, actor and targets every 2nd update",
    "andrychowicz2017-her": "Andrychowicz et al. 2017 (HER paper), DDPG + HER as OpenAI baselines' her config sets it: "
                            "3×256, Adam 1e-3, batch 256, polyak 0.95 (τ 0.05), action L2 1.0, random actions 30% and "
                            "Gaussian 0.2, normalization clip 5, future k = 4, γ = 1 − 1/T with Fetch's T = 50 (0.98; "
                            "set --gamma for another episode length). Not reproduced in one process: baselines' MPI "
                            "workers (19 in its README's FetchPickAndPlace example), each collecting 2 episodes per "
                            "cycle and averaging gradients, and its 40 updates per 100 steps (here 1 per step, after "
                            "256 random steps); nor its target update: polyak 0.95 once per 40 updates there (per "
                            "update τ ≈ 0.0013), τ 0.05 at every update here; nor its goal normalizer fed with "
                            "relabelled goals (here every observation entry by the observations collected, "
                            "achieved_goal too, std floor 1e-8 against its 0.01), its clip of raw observations at 200, "
                            "Xavier init and TD-target clip to [−1/(1 − γ), 0]",
    "mujoco": "= lillicrap2015",
}
