"""Files: atomic writes (:mod:`.atomic`), the checkpoint format (:mod:`.checkpoint`) and the run
directory's layout (:mod:`.rundir`). Nothing here imports torch models or the training loop."""
