"""``GET /dashboard``: the staff dashboard, a server-rendered page over the JSON endpoints.

The page and its assets (``static/``: the script, the style sheet and the vendored uPlot
chart library) ship in the package and are served by this app, so the dashboard works
with no build step and no network beyond the API itself. The page itself carries no
data and needs no token; its script asks for the bearer token once, keeps it in the
tab's ``sessionStorage`` and sends it as an ``Authorization`` header, never in a URL.
"""

from __future__ import annotations

import html
import json
from datetime import timedelta
from importlib import resources
from pathlib import Path
from string import Template

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from shopify_sync.timeutil import utcnow

STATIC_DIR = Path(str(resources.files("shopify_sync.api") / "static"))
STATIC_PATH = "/dashboard/static"
DEFAULT_DAYS = 30

# Everything from this origin: a page that loads nothing from elsewhere works offline,
# and a stray third-party script could not read the token. uPlot sizes its elements
# through inline styles, hence 'unsafe-inline' for styles only.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")

router = APIRouter()


def render_page(shops: tuple[str, ...]) -> str:
    """The page with the configured shops and the default range filled in."""
    end = utcnow().date()
    start = end - timedelta(days=DEFAULT_DAYS - 1)
    options = "\n".join(f'<option value="{html.escape(s)}">{html.escape(s)}</option>' for s in shops)
    template = Template((STATIC_DIR / "dashboard.html").read_text(encoding="utf-8"))
    return template.substitute(
        static=STATIC_PATH,
        start=start.isoformat(),
        end=end.isoformat(),
        shop_options=options,
        # For the script: which shops to expect, so a shop without orders gets its own message.
        # Script content is not HTML-decoded: escape "<" so no value can close the element.
        config=json.dumps({"shops": list(shops), "defaultDays": DEFAULT_DAYS}).replace("<", "\\u003c"),
    )


@router.get("/dashboard", include_in_schema=False, response_class=HTMLResponse)
def dashboard(request: Request) -> HTMLResponse:
    shops: tuple[str, ...] = tuple(request.app.state.backends.settings.shop_codes)
    return HTMLResponse(render_page(shops), headers={
        "Content-Security-Policy": _CSP, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
    })


def install_dashboard(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="dashboard-static")
