"""The per-unit figures `kopter deploy cost` bills (``kopter/deploy/usage.py``), counted again:
one real worker on every queue, behind a counting proxy in front of moto, runs each kind of
kopter's work, and what it sent AWS, made into what AWS bills (tests/support/metering.py),
divided by the units of work, is each figure within the tolerance ``usage`` states. A change
to the code that changes what a unit of work costs fails here until the figure (and with it
docs/deploying.md's bill) follows."""

from __future__ import annotations

import pytest

from kopter.deploy import usage
from tests.support.recount import recount

pytestmark = pytest.mark.long


def test_the_figures_are_what_kopter_sends(workers):
    run = recount(workers)
    measured = run.figures
    recounted = {n: f for n, f in usage.FIGURES.items() if f.recounted}
    assert set(measured) == set(recounted), "a figure without its recount, or the reverse"
    off = {}
    for name, figure in recounted.items():
        allowed = figure.tolerance * abs(figure.value) + 1e-9
        if abs(measured[name] - figure.value) > allowed:
            off[name] = (figure.value, round(measured[name], 4))
    assert not off, f"(figure, recounted) beyond the tolerance: {off}"

    # Each message is sent once, received once, deleted once, and fits one 64 KB request.
    work = [p.metered for name, p in run.phases.items() if name != "idle"]
    assert all(m.largest_message < 64 * 1024 for m in work)
    for m in work:
        for queue, received in m.receives.items():
            assert received <= m.deleted[queue], queue
