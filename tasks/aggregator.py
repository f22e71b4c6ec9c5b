"""The `aggregator` queue: hourly cost series from fleet x prices."""

from kopter.errors import NotBuilt
from tasks.app import app


@app.task
def aggregate_last_hour() -> None:
    raise NotBuilt("the cost aggregator", issue=6)
