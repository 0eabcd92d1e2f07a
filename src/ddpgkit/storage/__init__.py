"""Files: atomic writes (:mod:`ddpgkit.storage.atomic`), the checkpoint manifest
(:mod:`ddpgkit.storage.manifest`), the checkpoint format (:mod:`ddpgkit.storage.checkpoint`) and the run
directory's layout (:mod:`ddpgkit.storage.rundir`). Nothing here imports torch models or the training loop."""
