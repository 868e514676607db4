"""The live loop's check rules (crowd/checks.py): control rate, the can't-tell rule, silver controls."""

from __future__ import annotations

from listenloop.crowd.checks import (
    ESTABLISHED_EVIDENCE,
    MAX_CHECK_SHARE,
    RAISED_CONTROL_RATE,
    TRUST_MARGIN,
    cant_tell_fails,
    control_rate_for,
    is_silver,
)
from listenloop.crowd.redundancy import CANT_TELL


def test_control_rate_rises_while_trust_is_uncertain_or_low_and_stays_bounded() -> None:
    established = control_rate_for(0.1, 0.05, 0.9, ESTABLISHED_EVIDENCE, 0.5)
    assert established == 0.1
    assert control_rate_for(0.1, 0.05, 0.9, ESTABLISHED_EVIDENCE - 1, 0.5) == RAISED_CONTROL_RATE  # uncertain
    low = 0.5 + TRUST_MARGIN - 0.01
    assert control_rate_for(0.1, 0.05, low, 50.0, 0.5) == RAISED_CONTROL_RATE  # low
    assert control_rate_for(0.1, 0.3, 0.2, 0.0, 0.5) + 0.3 <= MAX_CHECK_SHARE + 1e-12  # bounded
    assert control_rate_for(0.5, 0.05, 0.2, 0.0, 0.5) == 0.5  # an owner's higher rate stays
    assert control_rate_for(0.0, 0.05, 0.2, 0.0, 0.5) == 0.0  # no controls in this project: none


def test_cant_tell_fails_only_far_above_the_crowd_with_enough_answers() -> None:
    assert not cant_tell_fails(9, 9, 0, 100)  # too few answers to judge
    assert cant_tell_fails(3, 10, 0, 100)  # 0.3 > max(0, 0.2)
    assert not cant_tell_fails(2, 10, 0, 100)  # 0.2 is not above 0.2
    assert not cant_tell_fails(5, 10, 30, 100)  # 0.5 against a crowd at 0.3: not above 0.6
    assert cant_tell_fails(7, 10, 30, 100)  # 0.7 > max(0.6, 0.5)
    assert cant_tell_fails(10, 10, 0, 0)  # nobody else yet: the crowd's rate counts as 0


def test_silver_needs_confidence_full_agreement_and_two_trusted_answers() -> None:
    trusted, newcomer = (0.9, 5.0), (0.9, 0.0)
    two = [trusted, trusted]
    assert is_silver("3", 0.995, ["3", "3"], *zip(*two, strict=True))
    assert is_silver("3", 0.995, ["3", CANT_TELL, "3"], *zip(trusted, (0.4, 0.0), trusted, strict=True))
    assert not is_silver("3", 0.98, ["3", "3"], *zip(*two, strict=True))  # not confident enough
    assert not is_silver(
        "3", 0.999, ["3", "3", "4"], *zip(trusted, trusted, trusted, strict=True)
    )  # one disagrees
    assert not is_silver("3", 0.999, ["3", "3"], *zip(trusted, newcomer, strict=True))  # one trusted only
    assert not is_silver("3", 0.999, ["3", "3"], *zip(trusted, (0.6, 9.0), strict=True))  # low trust
    assert not is_silver(CANT_TELL, 1.0, [CANT_TELL, CANT_TELL], *zip(*two, strict=True))
    assert not is_silver(None, None, [], [], [])
