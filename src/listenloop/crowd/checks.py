"""The live loop's check rules: how often an annotator is checked, when a control clip comes
back, which finished clips become "silver" controls, and when "can't tell" fails a control.

Checks must last as long as an annotator works and must not be told from regular tasks
(issue 16; the trust they feed is `crowd.trust`):

- **Control rate** (`control_rate_for`): the project's rate once an annotator's trust is
  established (checks weighing at least `ESTABLISHED_EVIDENCE`, trust at least `TRUST_MARGIN`
  above the project's threshold); `RAISED_CONTROL_RATE` while it is uncertain or low, so that
  a newcomer or a doubtful annotator meets checks often. Control and consistency questions
  together stay at most `MAX_CHECK_SHARE` of the tasks; a project with no controls (rate 0)
  gets none.
- **Reuse** (`CONTROL_REUSE_AFTER`): a control clip comes back to the same annotator once
  they had that many other tasks since they last heard it (a clip they never had comes first).
- **Silver controls** (`is_silver`): a clip the crowd finished (status done) with confidence
  at least `SILVER_CONFIDENCE`, where every answer that named a class named the label and at
  least `SILVER_VOTES` of them came from trusted annotators (trust at least `SILVER_TRUST` on
  checks weighing at least `SILVER_EVIDENCE`). Agreement among trusted people, never the
  model. It is served as a control only to annotators who never answered it.
- **Can't tell** (`cant_tell_fails`): a control answered "can't tell" checks nothing, unless
  the annotator answered "can't tell" far more often than the crowd: with at least
  `MIN_CANT_TELL_ANSWERS` answers, a rate r above max(2 c, c + 0.2) where c is the rate of
  everyone else in the project (0 when nobody else answered). Then it is a failed check.
"""

from __future__ import annotations

from collections.abc import Sequence

from listenloop.crowd.redundancy import CANT_TELL

RAISED_CONTROL_RATE = 0.3
MAX_CHECK_SHARE = 0.4
ESTABLISHED_EVIDENCE = 10.0
TRUST_MARGIN = 0.1
CONTROL_REUSE_AFTER = 20
SILVER_CONFIDENCE = 0.99
SILVER_VOTES = 2
SILVER_TRUST = 0.7
SILVER_EVIDENCE = 3.0
MIN_CANT_TELL_ANSWERS = 10
SILVER_TASKS = ("classification", "binary")  # one class per answer: agreement is plain equality


def control_rate_for(
    base: float, consistency: float, trust: float, evidence: float, threshold: float
) -> float:
    """The share of an annotator's tasks that are control questions (see the module's rule)."""
    if base <= 0.0:
        return 0.0
    if evidence >= ESTABLISHED_EVIDENCE and trust >= threshold + TRUST_MARGIN:
        return base
    return max(base, min(RAISED_CONTROL_RATE, MAX_CHECK_SHARE - consistency))


def cant_tell_fails(own_cant_tell: int, own_answers: int, crowd_cant_tell: int, crowd_answers: int) -> bool:
    """Whether a control answered "can't tell" is a failed check, from the answers before it."""
    if own_answers < MIN_CANT_TELL_ANSWERS:
        return False
    rate = own_cant_tell / own_answers
    crowd = crowd_cant_tell / crowd_answers if crowd_answers > 0 else 0.0
    return rate > max(2.0 * crowd, crowd + 0.2)


def is_silver(
    label: str | None,
    confidence: float | None,
    answers: Sequence[str],
    trusts: Sequence[float],
    evidences: Sequence[float],
) -> bool:
    """Whether a finished clip becomes a silver control (its answers, their annotators' trust, evidence)."""
    if label is None or label == CANT_TELL or confidence is None or confidence < SILVER_CONFIDENCE:
        return False
    trusted = 0
    for answer, trust, evidence in zip(answers, trusts, evidences, strict=True):
        if answer == CANT_TELL:
            continue
        if answer != label:
            return False
        trusted += int(trust >= SILVER_TRUST and evidence >= SILVER_EVIDENCE)
    return trusted >= SILVER_VOTES
