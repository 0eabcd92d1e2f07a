"""Experiments as library calls: a training run into a run directory (:mod:`.run`) and the chapter's
fit with its figures (:mod:`.fit`) — what the CLI's commands do, callable from Python and from workers."""
