"""Read a report page back: its sections, the images in each (decoded), its notes and every outside reference."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

DATA_PNG = "data:image/png;base64,"
TASK_SECTIONS = ("curves", "progress", "importance", "cost", "predictions")  # <task>-<name>, in this order


@dataclass
class Section:
    anchor: str
    images: list[Image.Image] = field(default_factory=list)
    text: str = ""


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, Section] = {}
        self.order: list[str] = []
        self.outside: list[str] = []  # src/href values that are neither data: URIs nor in-page anchors
        self._current: Section | None = None
        self.text = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._current = Section(attrs["id"])
            self.sections[attrs["id"]] = self._current
            self.order.append(attrs["id"])
        for key in ("src", "href"):
            value = attrs.get(key)
            if value is not None and not (value.startswith(DATA_PNG) or value.startswith("#")):
                self.outside.append(value)
        if tag == "img":
            assert attrs["src"].startswith(DATA_PNG), attrs["src"][:80]
            im = Image.open(io.BytesIO(base64.b64decode(attrs["src"][len(DATA_PNG) :], validate=True)))
            im.load()  # decodes every pixel: a truncated or corrupt PNG raises here
            assert im.format == "PNG" and im.width > 0 and im.height > 0
            assert (int(attrs["width"]), int(attrs["height"])) == im.size
            assert self._current is not None, "an image outside every section"
            self._current.images.append(im)

    def handle_endtag(self, tag):
        if tag == "section":
            self._current = None

    def handle_data(self, data):
        self.text.append(data)
        if self._current is not None:
            self._current.text += data


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(Path(path).read_text(encoding="utf-8"))
    page.close()
    return page


CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; .ci/run installs it. Never a downloaded browser.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Rendered:
    errors: list[str]  # console errors and uncaught page errors
    requests: list[str]  # every URL the page asked for besides the page itself and data: URIs
    figures: list[dict]  # per <img>: alt, complete, naturalWidth, width and height on the page
    sections: list[str]  # ids of the sections, in order


def open_in_browser(path: Path, screenshot: Path | None = None, width: int = 1100) -> Rendered:
    """Open a report from disk in headless Chromium with the network off; optionally screenshot the first
    section. Every request other than the file itself is recorded and refused."""
    from playwright.sync_api import sync_playwright

    url = Path(path).absolute().as_uri()
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": width, "height": 900})
            page = context.new_page()
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))

            def route(r):
                if r.request.url == url or r.request.url.startswith("data:"):
                    r.continue_()
                else:
                    requests.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto(url, wait_until="load")
            figures = page.evaluate(
                """() => [...document.images].map(i => {
                    const r = i.getBoundingClientRect();
                    return {alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth, width: r.width,
                            height: r.height};
                })"""
            )
            sections = page.evaluate("() => [...document.querySelectorAll('section')].map(s => s.id)")
            if screenshot is not None:  # the first section with a margin of page around it
                box = page.locator("section").first.bounding_box()
                clip = {"x": max(0, box["x"] - 16), "y": max(0, box["y"] - 8)}
                clip.update(width=box["width"] + 32, height=box["height"] + 24)
                page.screenshot(path=str(screenshot), clip=clip)
        finally:
            browser.close()
    return Rendered(errors, requests, figures, sections)
