"""Experiments as library calls: training runs into run directories (:mod:`ddpgkit.experiments.run`), over
worker processes (:mod:`ddpgkit.experiments.workers`) or on Ray (:mod:`ddpgkit.experiments.sweep`), and the
chapter's fit with its figures (:mod:`ddpgkit.experiments.chapter`) — what the CLI's commands do, callable from
Python and from workers."""
