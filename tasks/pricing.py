"""The `pricing` queue: the EC2 price list."""

from kopter.errors import NotBuilt
from tasks.app import app


@app.task
def refresh_price_list() -> None:
    raise NotBuilt("the EC2 price-list import", issue=5)
