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


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KOPTER_AWS_ENDPOINT_URL": "127.0.0.1:5000"}, "KOPTER_AWS_ENDPOINT_URL"),
        ({"KOPTER_REDIS_URL": "http://x"}, "KOPTER_REDIS_URL"),
        ({"KOPTER_PREFIX": "bad prefix!"}, "KOPTER_PREFIX"),
        ({"KOPTER_VISIBILITY_TIMEOUT": "ten"}, "not a whole number"),
        ({"KOPTER_VISIBILITY_TIMEOUT": "50000"}, "outside"),
        ({"KOPTER_WEB_OIDC_ISSUER": "cognito-idp.example"}, "KOPTER_WEB_OIDC_ISSUER"),
        ({"KOPTER_WEB_OIDC_CLIENT_ID": "a client"}, "KOPTER_WEB_OIDC_CLIENT_ID"),
        ({"KOPTER_FLOWER_BASIC_AUTH": '{"username": "ops"}'}, "KOPTER_FLOWER_BASIC_AUTH"),
        ({"KOPTER_FLOWER_BASIC_AUTH": '{"username": "ops", "pass'}, "KOPTER_FLOWER_BASIC_AUTH"),
    ],
)
def test_bad_settings_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        load(env)


def test_flower_login_as_ecs_passes_a_secrets_manager_secret():
    """The stack's FlowerLogin secret reaches the container whole, as JSON."""
    secret = '{"username": "kopter", "password": "p4ss-w0rd"}'
    assert load({"KOPTER_FLOWER_BASIC_AUTH": secret}).flower_basic_auth == ("kopter:p4ss-w0rd",)
    with pytest.raises(ConfigError) as refused:
        load({"KOPTER_FLOWER_BASIC_AUTH": '{"username": "kopter", "password": "p4ss w0rd"}'})
    assert "p4ss" not in str(refused.value)
