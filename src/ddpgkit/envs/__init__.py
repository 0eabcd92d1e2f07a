"""Environments: making and checking them (:mod:`ddpgkit.envs.make`), ddpgkit's own test envs
(:mod:`ddpgkit.envs.testing`), episodes of a fixed policy (:mod:`ddpgkit.envs.episodes`) and their
recording as GIFs (:mod:`ddpgkit.envs.render`)."""
