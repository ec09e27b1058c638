"""Upper bounds of integer options (no torch: the command line reads them before it loads torch).

dbm.config checks every config field against them; the estimators' caps and the CLI's counts use
them too: README, "Reliability"."""
MAX_COUNT = 10 ** 9        # counts of updates, steps, sweeps, intervals, caps: int64 arithmetic and loops that end
MAX_BATCH = 10 ** 6        # chains, images or samples held at once (a batch of 10^6 MNIST images is 3 GB)
MAX_WIDTH = 10 ** 5        # a layer's width or a net's channels (a 10^5 x 10^5 weight is 40 GB)
