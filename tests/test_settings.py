import re

import pytest

from kopter.cli.operate import dev
from kopter.errors import ConfigError
from kopter.settings import load
from tests.support.samples import ROOT

pytestmark = pytest.mark.unit


def _documented() -> dict[str, str]:
    """The README's Settings table: each variable and its default cell."""
    section = (ROOT / "README.md").read_text().split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(KOPTER_\w+)` \| ([^|]+) \|", section, re.MULTILINE)
    return {name: default.strip() for name, default in rows}


def test_defaults_are_the_documented_ones():
    documented = _documented()
    shown = load({}).for_display()
    # `kopter dev`'s own options, read by the command line where `kopter dev` alone uses them.
    dev_only = {o.envvar: str(o.default) for o in dev.params if o.envvar}
    assert set(documented) == set(shown) | set(dev_only), "the README's table and the settings"
    for name, cell in documented.items():
        value = shown.get(name, dev_only.get(name))
        if cell.startswith("unset"):
            assert value == "", name
        else:
            assert cell == f"`{value}`", name
    s = load({})
    assert s.aws_endpoint_url is None  # real AWS
    assert s.visibility_timeout > s.task_time_limit  # the SPEC's rule, kept by the defaults
    assert s.worker_stop_timeout == 120  # Fargate's most
    assert not s.channels_allow_private and s.channels_email_from is None
    assert (s.channels_timeout, s.channels_attempt_seconds) == (10, 35)
    assert load({"KOPTER_CHANNELS_ALLOW_PRIVATE": "TRUE"}).channels_allow_private


@pytest.mark.parametrize(
    ("stop_timeout", "give_up_after"),
    [("15", 5), ("20", 10), ("120", 105), ("960", 930)],
)
def test_a_stopping_worker_gives_up_on_its_tasks_a_margin_before_sigkill(
    stop_timeout, give_up_after
):
    s = load({"KOPTER_WORKER_STOP_TIMEOUT": stop_timeout})
    assert s.worker_give_up_after == give_up_after


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KOPTER_AWS_ENDPOINT_URL": "127.0.0.1:5000"}, "is not a http or https URL"),
        ({"KOPTER_REDIS_URL": "http://x"}, "is not a redis or rediss URL"),
        ({"KOPTER_PREFIX": "bad prefix!"}, "use 1 to 40 of"),
        ({"KOPTER_VISIBILITY_TIMEOUT": "ten"}, "is not a whole number"),
        ({"KOPTER_VISIBILITY_TIMEOUT": "50000"}, "is outside 2..43200"),
        ({"KOPTER_WORKER_STOP_TIMEOUT": "2m"}, "KOPTER_WORKER_STOP_TIMEOUT='2m' is not a whole"),
        ({"KOPTER_WORKER_STOP_TIMEOUT": "10"}, "KOPTER_WORKER_STOP_TIMEOUT=10 is outside 15"),
        ({"KOPTER_COST_JUMP_FACTOR": "0.5"}, "must be at least 1"),
        ({"KOPTER_PRICING_REGIONS": "us-east-1,Paris"}, "is not a region name"),
        ({"KOPTER_AWS_ACCOUNT_ID": "1234"}, "is not a 12-digit AWS account id"),
        ({"KOPTER_FLOWER_BASIC_AUTH": "admin"}, "entry 1 is not user:password"),
        ({"KOPTER_WEB_OIDC_ISSUER": "cognito-idp.example"}, "is not a http or https URL"),
        ({"KOPTER_WEB_OIDC_CLIENT_ID": "a client"}, "is not of the form"),
        ({"KOPTER_FLOWER_BASIC_AUTH": '{"username": "ops"}'}, "KOPTER_FLOWER_BASIC_AUTH"),
        ({"KOPTER_FLOWER_BASIC_AUTH": '{"username": "ops", "pass'}, "KOPTER_FLOWER_BASIC_AUTH"),
        ({"KOPTER_CHANNELS_ALLOW_PRIVATE": "maybe"}, "KOPTER_CHANNELS_ALLOW_PRIVATE='maybe'"),
        ({"KOPTER_CHANNELS_EMAIL_FROM": "Alerts <a@x.io>"}, "KOPTER_CHANNELS_EMAIL_FROM='Alerts"),
        ({"KOPTER_CHANNELS_TIMEOUT": "0"}, "KOPTER_CHANNELS_TIMEOUT=0 is outside 1..60"),
    ],
)
def test_bad_settings_name_the_variable(env, message):
    [variable] = env
    with pytest.raises(ConfigError) as refused:
        load(env)
    [line] = str(refused.value).splitlines()
    assert line.startswith(variable) and message in line, line


def test_flower_login_as_ecs_passes_a_secrets_manager_secret():
    """The stack's FlowerLogin secret reaches the container whole, as JSON."""
    secret = '{"username": "kopter", "password": "p4ss-w0rd"}'
    assert load({"KOPTER_FLOWER_BASIC_AUTH": secret}).flower_basic_auth == ("kopter:p4ss-w0rd",)
    with pytest.raises(ConfigError) as refused:
        load({"KOPTER_FLOWER_BASIC_AUTH": '{"username": "kopter", "password": "p4ss w0rd"}'})
    assert "p4ss" not in str(refused.value)
