"""``GET /v1/channels``, ``POST /v1/channels`` and ``DELETE /v1/channels/{id}``: where the
tenant's notifications are delivered. The secret of a webhook is in the answer to the POST that
added it, and in no other answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from kopter.api.errors import ApiError, responses
from kopter.api.identity import Caller
from kopter.channels import store
from kopter.errors import NotFound, Refused
from kopter.reads.channels import ChannelRow, query, view

router = APIRouter(tags=["channels"])


class Channels(BaseModel):
    items: list[ChannelRow]


class NewChannel(BaseModel):
    kind: Literal["webhook", "slack", "email"]
    target: Annotated[
        str, Field(max_length=2048, description="The webhook's or Slack's URL, or the address.")
    ]
    secret: Annotated[
        str | None,
        Field(
            max_length=256,
            description="A webhook's signing secret; kopter makes one when none is given.",
        ),
    ] = None
    min_level: Annotated[
        str,
        Field(
            max_length=16,
            description="Deliver notifications of this severity and above: info, warning, high, "
            "critical (or Sigma's informational, low, medium).",
        ),
    ] = "info"


class AddedChannel(BaseModel):
    channel: ChannelRow
    secret: str | None = Field(description="A webhook's signing secret: shown this once.")


@router.get(
    "/v1/channels",
    response_model=Channels,
    responses=responses(401),
    summary="Where the tenant's notifications are delivered",
)
def channels(tenant: Caller) -> dict[str, Any]:
    return {"items": [view(c) for c in query(tenant)]}


@router.post(
    "/v1/channels",
    response_model=AddedChannel,
    status_code=201,
    responses=responses(400, 401),
    summary="Add a channel: a webhook, a Slack incoming webhook or an email address",
)
def add_channel(tenant: Caller, new: NewChannel, request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    try:
        channel, secret = store.add(
            tenant, new.kind, new.target, settings, new.secret, new.min_level
        )
    except Refused as e:
        raise ApiError(400, str(e)) from None
    return {"channel": view(channel), "secret": secret}


@router.delete(
    "/v1/channels/{id}",
    status_code=204,
    response_class=Response,
    responses=responses(401, 404),
    summary="Remove a channel",
)
def remove_channel(tenant: Caller, id: str) -> Response:
    try:
        store.remove(tenant, id)
    except NotFound:
        raise ApiError(404, "no such channel") from None
    return Response(status_code=204)
