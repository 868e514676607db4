"""The learning service: the work between answers, in a process of its own beside the server.

`service` (the polling loop, leases, Dask), `process` (the child process that runs it),
`round` (one learning round: features, fit, scores, the queue's order), `retrain`, `skills`
(the background crowd fits: Dawid-Skene, rating noise), `spammers`, `pool_map` (the map of
the pool) and `relabel` (the relabel-or-new queue). It reads and writes the database the live
request path (`engine.live`) serves from; the live path never imports it.
"""
