import pytest

from kopter.errors import ConfigError
from kopter.settings import load

pytestmark = pytest.mark.unit


def test_defaults_are_the_documented_ones():
    s = load({})
    assert s.aws_endpoint_url is None  # real AWS
    assert s.region == "us-east-1"
    assert s.prefix == "kopter-dev-"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.pricing_url == "https://pricing.us-east-1.amazonaws.com"
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
        ({"KOPTER_AWS_ENDPOINT_URL": "127.0.0.1:5000"}, "KOPTER_AWS_ENDPOINT_URL"),
        ({"KOPTER_REDIS_URL": "http://x"}, "KOPTER_REDIS_URL"),
        ({"KOPTER_PREFIX": "bad prefix!"}, "KOPTER_PREFIX"),
        ({"KOPTER_VISIBILITY_TIMEOUT": "ten"}, "not a whole number"),
        ({"KOPTER_VISIBILITY_TIMEOUT": "50000"}, "outside"),
        ({"KOPTER_WORKER_STOP_TIMEOUT": "2m"}, "KOPTER_WORKER_STOP_TIMEOUT='2m' is not a whole"),
        ({"KOPTER_WORKER_STOP_TIMEOUT": "10"}, "KOPTER_WORKER_STOP_TIMEOUT=10 is outside 15"),
        ({"KOPTER_WEB_OIDC_ISSUER": "cognito-idp.example"}, "KOPTER_WEB_OIDC_ISSUER"),
        ({"KOPTER_WEB_OIDC_CLIENT_ID": "a client"}, "KOPTER_WEB_OIDC_CLIENT_ID"),
        ({"KOPTER_CHANNELS_ALLOW_PRIVATE": "maybe"}, "KOPTER_CHANNELS_ALLOW_PRIVATE='maybe'"),
        ({"KOPTER_CHANNELS_EMAIL_FROM": "Alerts <a@x.io>"}, "KOPTER_CHANNELS_EMAIL_FROM='Alerts"),
        ({"KOPTER_CHANNELS_TIMEOUT": "0"}, "KOPTER_CHANNELS_TIMEOUT=0 is outside 1..60"),
    ],
)
def test_bad_settings_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        load(env)
