"""Where a run's hyperparameters come from: :class:`~ddpgkit.config.ddpg.DDPGConfig`
(:mod:`ddpgkit.config.ddpg`), the named DDPGs (:mod:`ddpgkit.config.presets`), the per-env table
(:mod:`ddpgkit.config.hyperparams`) and the sub-seeds of a run seed (:mod:`ddpgkit.config.seeds`)."""
