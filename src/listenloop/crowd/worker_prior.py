"""What every path assumes of a worker it knows nothing about yet: one prior, used everywhere.

A worker's trust is the posterior mean of the probability that they answer a check right,
under a Beta prior of mean `PRIOR_TRUST` and weight `PRIOR_STRENGTH` pseudo-checks
(`crowd.trust`); the redundancy policy reads that trust as the worker's one-coin accuracy
(`crowd.redundancy`), and a worker without a fitted confusion matrix is one-coin at it
(`crowd.worker_model`). So the prior is the accuracy of an unknown worker, and the
platform's live re-aggregation, the background Dawid-Skene refresh, `simulate-crowd`,
`aggregate --method trust` and the simulated crowds all start every worker from it.

Why 0.75 with 4 pseudo-checks (3 passed, 1 failed):
- An answer must carry evidence. At 0.5 a binary answer carries none (q / (1 - q) = 1): seven
  agreeing new annotators gave confidence 0.507. At 0.75 three agreeing answers on two classes
  give 0.75^3 / (0.75^3 + 0.25^3) = 0.964 >= tau 0.95 (one-coin needs q >= 0.727); on ten
  classes two do (0.9990).
- It is what crowds of unknown workers are: typical crowd accuracies lie between 0.6 and 0.9
  (the campaign's default skills average 0.72 with a spammer among nine).
- It stays an estimate that checks move quickly: a worker who fails their first three checks
  is at 3 / 7 = 0.43, below the default trust threshold 0.5 (their answers can no longer close
  a clip); passing one check gives 0.8, failing one 0.6.
"""

from __future__ import annotations

PRIOR_TRUST = 0.75
"""Prior mean of a worker's trust: the accuracy assumed of a worker without checks or a fit."""

PRIOR_STRENGTH = 4.0
"""Weight of the prior in pseudo-checks (PRIOR_TRUST * PRIOR_STRENGTH of them passed)."""
