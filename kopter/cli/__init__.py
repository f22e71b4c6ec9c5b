"""`kopter`: the operator's command line (the command group is `kopter.cli.root`).

Every listing takes ``--json`` (one JSON object a line). Bad input is one line on stderr and a
non-zero exit, never a traceback: ``main()`` turns kopter's errors, and the usual failures of
reaching AWS or Redis, into that line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from pynamodb.exceptions import PynamoDBException, TableDoesNotExist
from redis.exceptions import ConnectionError as RedisConnectionError

from kopter.cli.root import cli
from kopter.errors import KopterError
from kopter.settings import get_settings
from kopter.tables import bind


def main(argv: Sequence[str] | None = None) -> None:
    try:
        bind(get_settings())  # a bad setting is reported like any other error
        cli.main(args=argv, prog_name="kopter", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KopterError as e:
        _fail(str(e))
    except TableDoesNotExist as e:
        _fail(f"{e.msg}: run `kopter bootstrap`")
    except EndpointConnectionError as e:
        _fail(f"cannot reach AWS at {e.kwargs.get('endpoint_url')}: is it running?")
    except (ClientError, BotoCoreError) as e:
        _fail(f"AWS refused: {e}")
    except PynamoDBException as e:
        _fail(f"DynamoDB: {e.msg}" + (f" ({e.cause})" if e.cause else ""))
    except RedisConnectionError as e:
        _fail(f"cannot reach Redis: {e}")


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"kopter: error: {message}", err=True)
    sys.exit(code)
