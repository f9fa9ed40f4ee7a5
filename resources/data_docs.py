"""Great Expectations Data Docs of the quality gates: one page per table, styled and offline,
linked from the Dagster checks over http and served on loopback by `make dev` (platform/dev.py).

GX 1.x's page templates load Bootstrap, jQuery, Font Awesome, bootstrap-table, a date picker,
Vega and a logo from CDNs: offline, a page is unstyled and waits for each to time out. Pages here
are rendered by GX's own renderer and view, with a few of its templates replaced by
`data_docs_templates/` (the page's head, the script imports, the navbar, the footer, charts).
Those point at copies under `<docs>/static/`, taken from pinned PyPI packages (XStatic-Bootstrap
4, XStatic-jQuery, XStatic-Font-Awesome 6) and from GX's own images. What is left out is not
needed by a validation page: bootstrap-table and the date picker serve GX's site index, which is
not used (`write_index` writes ours), and Vega draws only distribution charts, shown here as
their specification.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
import shutil
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

DATA_DOCS_URL = "LAKEHOUSE_DATA_DOCS_URL"
DEFAULT_DATA_DOCS_URL = "http://127.0.0.1:3001"
TEMPLATES = Path(__file__).resolve().parent / "data_docs_templates"
STATIC = "static"  # under the docs folder
INDEX = "index.html"


def base_url() -> str:
    """Where the docs folder is served (read when a link is made, so `make dev` can move it)."""
    return (os.environ.get(DATA_DOCS_URL) or DEFAULT_DATA_DOCS_URL).rstrip("/")


def url_of(page: str | Path) -> str:
    """The http URL of a page of the docs folder (pages sit at its top level)."""
    return f"{base_url()}/{quote(Path(page).name)}"


def page_name(suite: str) -> str:
    """`raw/crm_accounts` -> `raw.crm_accounts.html`."""
    return suite.replace("/", ".") + ".html"


# -- the static files the pages load --------------------------------------------------------
def _static_files() -> dict[str, Path]:
    """Where each file under `static/` comes from."""
    import great_expectations
    import xstatic.pkg.bootstrap as bootstrap
    import xstatic.pkg.font_awesome as font_awesome
    import xstatic.pkg.jquery as jquery

    fa = Path(font_awesome.BASE_DIR)
    images = Path(great_expectations.__file__).parent / "render" / "view" / "static" / "images"
    return {
        "bootstrap/css/bootstrap.min.css": Path(bootstrap.BASE_DIR) / "css/bootstrap.min.css",
        # the bundle carries Popper, which Bootstrap 4's tooltips and dropdowns need
        "bootstrap/js/bootstrap.bundle.min.js": Path(bootstrap.BASE_DIR)
        / "js/bootstrap.bundle.min.js",
        "jquery/jquery.min.js": Path(jquery.BASE_DIR) / "jquery.min.js",
        "font-awesome/css/all.min.css": fa / "css/all.min.css",
        **{f"font-awesome/webfonts/{p.name}": p for p in sorted((fa / "webfonts").iterdir())},
        "images/logo-long.png": images / "logo-long.png",
        "images/favicon.ico": images / "favicon.ico",
    }


def install_static(folder: str | Path) -> Path:
    """Copy the files the pages load into `<folder>/static` (only those missing or changed, so
    it is cheap on every gate run; atomically, as two runs may write at once)."""
    static = Path(folder) / STATIC
    for rel, source in _static_files().items():
        target = static / rel
        if target.is_file() and target.stat().st_size == source.stat().st_size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    return static


# -- rendering ------------------------------------------------------------------------------
_DARK_MODE = re.compile(r"@media\s*\(\s*prefers-color-scheme\s*:\s*dark\s*\)\s*\{")


def offline_css(css: str) -> str:
    """GX's default styles without their dark-mode block: its rules are written for a dark
    Bootstrap theme loaded from a CDN (not shipped here; mixed with the light one they draw dark
    tables on a light page) and it fetches the navbar logo from a CDN. GX's stylesheet is
    included verbatim otherwise, so this is the one edit made to what GX renders."""
    out, at = [], 0
    for match in _DARK_MODE.finditer(css):
        if match.start() < at:
            continue
        depth, end = 1, match.end()
        while depth and end < len(css):
            depth += {"{": 1, "}": -1}.get(css[end], 0)
            end += 1
        out.append(css[at : match.start()])
        at = end
    out.append(css[at:])
    return "".join(out)


@functools.cache
def _page_view() -> Any:
    """GX's page view with our templates searched first. GX's own hook for this
    (`custom_views_directory`) is searched after its templates, so it cannot replace one."""
    from great_expectations.render.view import DefaultJinjaPageView
    from jinja2 import ChoiceLoader, FileSystemLoader

    view = DefaultJinjaPageView()
    view.env.loader = ChoiceLoader([FileSystemLoader(TEMPLATES), view.env.loader])
    view.env.filters["offline_css"] = offline_css
    return view


@functools.cache
def _page_renderer() -> Any:
    from great_expectations.render.renderer import ValidationResultsPageRenderer

    class GatePageRenderer(ValidationResultsPageRenderer):
        """GX's renderer, without the header's link to a suite page of GX's own site layout,
        which is not written here (this page lists the suite's expectations itself)."""

        @classmethod
        def _render_validation_header(cls, validation_results: Any) -> Any:
            header = super()._render_validation_header(validation_results)
            header.subheader.string_template["styling"]["params"].pop(
                "expectation_suite_name", None
            )
            return header

    return GatePageRenderer()


def render_validation(validation: Any) -> str:
    """One GX validation result as a page of the docs folder."""
    document = _page_renderer().render(validation)
    return _page_view().render(document, static_root=f"{STATIC}/", index_url=INDEX)


def write_page(folder: str | Path, suite: str, validation: Any, status: dict[str, Any]) -> Path:
    """Write `suite`'s page (the latest validation replaces the previous one), its status for
    the index, the static files, and the index."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    install_static(folder)
    page = folder / page_name(suite)
    _atomic_write(page, render_validation(validation))
    status = {
        **status,
        "suite": suite,
        "validated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    _atomic_write(page.with_suffix(".json"), json.dumps(status))
    write_index(folder)
    return page


def write_index(folder: str | Path) -> Path:
    """`index.html`: every gate's latest result, failed ones first."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    install_static(folder)
    gates = []
    for meta in sorted(folder.glob("*.json")):
        status = json.loads(meta.read_text())
        gates.append({**status, "page": quote(meta.with_suffix(".html").name)})
    gates.sort(key=lambda g: (g["passed"], g["suite"]))
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())
    text = env.get_template("gate_index.j2").render(
        gates=gates,
        failed=sum(not g["passed"] for g in gates),
        static_root=f"{STATIC}/",
        index_url=INDEX,
        ge_version=_gx_version(),
    )
    index = folder / INDEX
    _atomic_write(index, text)
    return index


def _gx_version() -> str:
    from importlib.metadata import version

    return version("great-expectations")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# -- serving --------------------------------------------------------------------------------
def server(folder: str | Path, host: str, port: int) -> ThreadingHTTPServer:
    """An http server of the docs folder (files only; requests are not logged). The caller
    runs `serve_forever` and `shutdown`."""
    root = str(folder)

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=root, **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def end_headers(self) -> None:
            self.send_header("Cache-Control", "no-cache")  # a page is replaced by each run
            super().end_headers()

    return ThreadingHTTPServer((host, port), Handler)
