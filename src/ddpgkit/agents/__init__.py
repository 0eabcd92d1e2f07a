"""The agents: :class:`~ddpgkit.agents.ddpg.DDPG` (:mod:`ddpgkit.agents.ddpg`), and N of them of one config
trained together as one (:class:`~ddpgkit.agents.group.DDPGGroup`, :mod:`ddpgkit.agents.group`)."""
