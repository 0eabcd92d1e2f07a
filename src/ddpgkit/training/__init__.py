"""Training: the environment loop and its callback hooks (:mod:`.loop`), the callbacks that write a
run directory (:mod:`.callbacks`), and the full training state for exact resume (:mod:`.state`)."""
