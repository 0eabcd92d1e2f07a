"""Environments: making and checking them (:mod:`ddpgkit.envs.make`), ddpgkit's own test envs
(:mod:`ddpgkit.envs.testing`), goal tasks (:mod:`ddpgkit.envs.goals`) and Gymnasium-Robotics
(:mod:`ddpgkit.envs.robotics`), episodes of a fixed policy (:mod:`ddpgkit.envs.episodes`) and their
recording as GIFs (:mod:`ddpgkit.envs.render`)."""
