"""The customers' web app (``web/src/``: plain ES modules and the vendored uPlot, no build step),
served by ``kopter api`` at ``/``, and copied into a folder for S3 and CloudFront by
``kopter web build``. ``config.json`` tells the app where the API is and which OIDC provider
signs users in; it is made from the ``KOPTER_WEB_*`` settings in both cases."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from kopter.errors import ConfigError
from kopter.settings import Settings

# The checkout's files (`make run`, an editable install), else those an installed wheel put
# beside kopter (the image: setup.cfg's data_files).
SOURCES = (
    Path(__file__).resolve().parents[2] / "web" / "src",
    Path(sys.prefix) / "share" / "kopter" / "web",
)


def config(settings: Settings) -> dict[str, Any]:
    """What the app reads at start: the API's base URL ("" for its own origin) and OIDC."""
    oidc = None
    if settings.web_oidc_issuer:
        if not settings.web_oidc_client_id:
            raise ConfigError("KOPTER_WEB_OIDC_ISSUER is set: set KOPTER_WEB_OIDC_CLIENT_ID too")
        oidc = {
            "issuer": settings.web_oidc_issuer,
            "client_id": settings.web_oidc_client_id,
            "scopes": settings.web_oidc_scopes,
            "redirect_uri": settings.web_oidc_redirect_uri,
        }
    return {"api": settings.web_api_url or "", "oidc": oidc}


def _source() -> Path:
    for source in SOURCES:
        if (source / "index.html").is_file():
            return source
    raise ConfigError(f"the web app's files are in neither {' nor '.join(map(str, SOURCES))}")


def install(app: FastAPI, settings: Settings) -> None:
    """``/config.json`` and the app's files at ``/``, after every API route."""
    web_config = config(settings)

    @app.get("/config.json", include_in_schema=False)
    def web_app_config() -> dict[str, Any]:
        return web_config

    app.mount("/", StaticFiles(directory=_source(), html=True), name="web")


def build(settings: Settings, target: Path) -> list[Path]:
    """Copy the app into ``target`` with its config.json; the files written."""
    source = _source()
    if target.exists() and any(target.iterdir()):
        raise ConfigError(f"{target} is not empty: give a new or empty folder")
    shutil.copytree(source, target, dirs_exist_ok=True)
    (target / "config.json").write_text(json.dumps(config(settings), indent=2) + "\n")
    return sorted(p for p in target.rglob("*") if p.is_file())
