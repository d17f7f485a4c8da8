"""Student's t quantiles for the adoption rule: a gain measured on two or three runs is
judged with t, not the normal quantile (with the normal quantile, one pass in two beside
three failures cleared the margin and a lucky candidate was proposed)."""

from __future__ import annotations

import itertools

Z = 1.2816  # one-sided 90% normal quantile

# One-sided 90% quantiles of Student's t by degrees of freedom.
_T90 = (
    (1, 3.0777),
    (2, 1.8856),
    (3, 1.6377),
    (4, 1.5332),
    (5, 1.4759),
    (6, 1.4398),
    (8, 1.3968),
    (10, 1.3722),
    (15, 1.3406),
    (20, 1.3253),
    (30, 1.3104),
    (60, 1.2958),
    (120, 1.2886),
)


def t90(dof: float) -> float:
    """Student's t one-sided 90% quantile, interpolated linearly in 1/dof between
    tabulated points (the normal quantile beyond 120)."""
    if dof >= _T90[-1][0]:
        return Z + (_T90[-1][1] - Z) * _T90[-1][0] / dof
    dof = max(dof, 1.0)
    for (lo, q_lo), (hi, q_hi) in itertools.pairwise(_T90):
        if dof <= hi:
            w = (1 / lo - 1 / dof) / (1 / lo - 1 / hi)
            return q_lo + w * (q_hi - q_lo)
    raise AssertionError("unreachable: the table ends at 120")
