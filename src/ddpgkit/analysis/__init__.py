"""What runs and fits show, read from their files: figures (:mod:`ddpgkit.analysis.plots`), statistics
(:mod:`ddpgkit.analysis.stats`), reports over many runs (:mod:`ddpgkit.analysis.report`), the networks over
the state space (:mod:`ddpgkit.analysis.inspection`). Nothing is imported here, so that the report loads
without torch."""
