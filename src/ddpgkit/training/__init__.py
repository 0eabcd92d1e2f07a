"""Training: the environment loop and its callback hooks (:mod:`ddpgkit.training.loop`), the callbacks that
write a run directory (:mod:`ddpgkit.training.callbacks`), the optional TensorBoard mirror
(:mod:`ddpgkit.training.tensorboard`), and the full training state for exact resume
(:mod:`ddpgkit.training.state`)."""
