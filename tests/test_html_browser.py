"""Every kind of HTML report opened in a real headless Chromium (Debian's ``chromium``, driven
by Playwright for Python through ``executable_path``; no browser is downloaded).

Each page: no console error, no request other than the page itself (every request is routed
and any other URL recorded and aborted), no dialog; tables sort on a header click and filter
from the search box; hostile names from a real export show as text and run nothing.
Set ``GPUPROF_SCREENSHOTS=docs/screenshots`` to keep a screenshot of each page kind.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gpuprof.cli.main import main

from .conftest import CLS_MODEL, fixture_path
from .test_html_report import (
    IMG,
    RESNET,
    SCRIPT,
    TRIDENT,
    _trtexec_files,
    hostile_export,
    slowed_copy,
)

pytestmark = pytest.mark.browser
SMALL_ENGINE = ["--shapes", "1x3x48x96", "--iterations", "5", "--warmup", "1",
                "--profile-iterations", "2"]
FAST_PERF = ["--concurrency-range", "1:2:1", "--shape", "x:1,3,48,192", "-p", "300", "-r", "3",
             "--warmup", "100", "--max-duration", "30", "--no-live", "--trace"]


@dataclass
class Visit:
    page: object
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)   # URLs other than the page: aborted
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # no sandbox: tests may run as root (CI containers), where Chromium refuses it
        chromium = playwright.chromium.launch(executable_path=shutil.which("chromium"),
                                              args=["--no-sandbox"])
        yield chromium
        chromium.close()


def visit(browser, path: Path) -> Visit:
    context = browser.new_context(viewport={"width": 1200, "height": 820})
    page = context.new_page()
    seen = Visit(page)
    own = path.resolve().as_uri()

    def route(request_route):
        url = request_route.request.url
        if url == own or url.startswith("data:"):
            request_route.continue_()
        else:
            seen.requests.append(url)
            request_route.abort()

    context.route("**/*", route)
    page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.errors.append(str(e)))
    page.on("dialog", lambda d: (seen.dialogs.append(d.message), d.dismiss()))
    page.goto(own, wait_until="load")
    return seen


def _run(argv: list[str]) -> None:
    assert main(argv) == 0, argv


def _page(kind: str, folder: Path, request) -> Path:
    """``kind``'s report.html, written by the command as a user would run it."""
    out = folder / "report.html"
    if kind == "nsys":
        _run(["nsys", str(fixture_path("nsys", RESNET)), "--out-dir", str(folder)])
    elif kind == "engine":
        if not CLS_MODEL.exists():
            pytest.skip("run tools/fetch_models.py first")
        _run(["engine", str(CLS_MODEL), *SMALL_ENGINE, "-o", str(folder)])
    elif kind == "triton":
        _run(["triton", str(fixture_path("triton", TRIDENT)), "-o", str(out)])
    elif kind == "trtexec":
        found = _trtexec_files()
        if found is None:
            pytest.skip("no trtexec layer-info/profile pair among the fixtures")
        _run(["trtexec", "--layer-info", str(found[0]), "--profile", str(found[1]), "-o", str(out)])
    elif kind == "diff":
        _run(["diff", str(fixture_path("nsys", RESNET)), str(slowed_copy(folder)), "-o", str(out)])
    elif kind == "net":
        from .test_net_ingest import random_records, write_capture

        _run(["net", str(write_capture(folder / "net.txt", random_records())), "-o", str(out)])
    elif kind == "perf":
        server = request.getfixturevalue("cls_triton_server")
        _run(["perf", "-m", server.model_name, "-u", server.http_url, *FAST_PERF, "-o", str(out)])
    return out


KINDS = ["nsys", "engine", "triton", "trtexec", "diff", "net",
         pytest.param("perf", marks=pytest.mark.triton)]


@pytest.mark.parametrize("kind", KINDS)
def test_page_is_clean_self_contained_and_zooms(kind, browser, tmp_path, capsys, request):
    seen = visit(browser, _page(kind, tmp_path, request))
    page = seen.page
    assert page.locator("table.data").count() > 0
    # Pareto; + latency and memory; per-window throughput; END_TO_END latency
    plots = {"nsys": 1, "engine": 3, "perf": 1, "triton": 1}.get(kind, 0)
    assert page.locator("figure img").count() >= plots
    assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator("h1").inner_text() == page.title()  # the summary comes first
    _screenshot(page, kind)  # as first shown: the whole run on the timeline
    canvas = page.locator(".timeline canvas")
    if canvas.count():
        canvas.first.scroll_into_view_if_needed()
        box = canvas.first.bounding_box()
        whole = _view(canvas)
        page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + 30)
        for _ in range(5):
            page.mouse.wheel(0, -300)   # zoom in where the pointer is
        page.wait_for_timeout(100)
        zoomed = _view(canvas)
        assert zoomed[1] - zoomed[0] < 0.5 * (whole[1] - whole[0])
        assert whole[0] <= zoomed[0] < zoomed[1] <= whole[1]
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + 30)
        page.mouse.up()
        panned = _view(canvas)
        assert panned[0] > zoomed[0]  # dragged left: later times come into view
        canvas.first.dblclick()
        assert _view(canvas) == whole
    assert seen.errors == [] and seen.requests == [] and seen.dialogs == []


def _view(canvas) -> tuple[float, float]:
    start, end = canvas.first.get_attribute("data-view").split()
    return float(start), float(end)


def _screenshot(page, kind: str) -> None:
    folder = os.environ.get("GPUPROF_SCREENSHOTS")
    if not folder:
        return
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(Path(folder) / f"{kind}.png"))
    timeline = page.locator("section:has(.timeline)")
    if timeline.count():
        timeline.first.screenshot(path=str(Path(folder) / f"{kind}_timeline.png"))
    figure = page.locator("section:has(figure)")
    if figure.count():
        figure.last.screenshot(path=str(Path(folder) / f"{kind}_plot.png"))


@pytest.fixture(scope="module")
def resnet_page(browser, tmp_path_factory):
    folder = tmp_path_factory.mktemp("resnet")
    assert main(["nsys", str(fixture_path("nsys", RESNET)), "--out-dir", str(folder)]) == 0
    return folder, visit(browser, folder / "report.html")


def _column(page, table: str, index: int) -> list[str]:
    return page.eval_on_selector_all(
        f"#{table} tbody tr", f"rows => rows.map(r => r.cells[{index}].getAttribute('data-v') "
                              f"?? r.cells[{index}].textContent)")


def test_numeric_column_sorts_on_header_clicks(resnet_page):
    folder, seen = resnet_page
    page = seen.page
    table = page.eval_on_selector("section[data-key=kernels] table", "t => t.id")
    headers = page.locator(f"#{table} thead th")
    index = next(i for i in range(headers.count())
                 if "num" in (headers.nth(i).get_attribute("class") or ""))
    before = [float(v) for v in _column(page, table, index)]
    headers.nth(index).click()
    ascending = [float(v) for v in _column(page, table, index)]
    headers.nth(index).click()
    descending = [float(v) for v in _column(page, table, index)]
    assert ascending == sorted(before) and descending == sorted(before, reverse=True)
    assert len(set(before)) > 1 and headers.nth(index).get_attribute("aria-sort") == "descending"
    assert seen.errors == []


def test_text_column_sorts_and_the_filter_box_filters(resnet_page):
    folder, seen = resnet_page
    page = seen.page
    table = page.eval_on_selector("section[data-key=layers] table", "t => t.id")
    names = _column(page, table, 0)
    page.locator(f"#{table} thead th").first.click()
    once = _column(page, table, 0)
    page.locator(f"#{table} thead th").first.click()
    assert _column(page, table, 0) == once[::-1] and sorted(once) == sorted(names)
    rows = next(s["rows"] for s in json.loads((folder / "report.json").read_text())["sections"]
                if s["key"] == "layers")
    want = sum(any(isinstance(v, str) and "layer3" in v.lower() for v in row.values()) for row in rows)
    page.fill(f"#{table}-filter", "LAYER3")
    visible = page.locator(f"#{table} tbody tr:visible")
    assert 0 < visible.count() == want < len(rows)
    assert all("layer3" in t.lower() for t in visible.all_inner_texts())
    assert page.locator(f"#{table}-count").inner_text() == f"{want} of {len(rows)} rows"
    assert seen.errors == []


def test_hostile_names_show_as_text_and_run_nothing(browser, tmp_path, capsys):
    out = tmp_path / "hostile.html"
    assert main(["nsys", str(hostile_export(tmp_path)), "-o", str(out)]) == 0
    seen = visit(browser, out)
    page = seen.page
    assert page.get_by_text(SCRIPT + IMG).count() > 0          # shown whole, as text
    assert page.locator("img:not([src^='data:'])").count() == 0
    assert page.locator("script").count() == 2                  # the page's own two blocks
    page.locator(".timeline canvas").first.scroll_into_view_if_needed()
    assert seen.dialogs == [] and seen.errors == [] and seen.requests == []


def test_timeline_tooltip_shows_a_hostile_name_as_text(browser, tmp_path, capsys):
    """Zoomed in on the longest kernel named by the hostile StringIds row (the wheel keeps the
    time under the pointer fixed), hovering it shows the whole name in the tooltip. (A kernel:
    kernels on one stream never overlap, while a hovered NVTX range shows its innermost child.)"""
    out = tmp_path / "hostile.html"
    assert main(["nsys", str(hostile_export(tmp_path)), "-o", str(out)]) == 0
    seen = visit(browser, out)
    page = seen.page
    data = json.loads(page.locator("script[type='application/json']").first.text_content())
    wanted = data["names"].index(SCRIPT + IMG)
    row, span = max(((i, s) for i, t in enumerate(data["tracks"]) for s in t["spans"]
                     if s[2] == wanted and t["name"].startswith("GPU ")), key=lambda pair: pair[1][1])
    canvas = page.locator(".timeline canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    label_w, axis_h, row_h = 200, 22, 18  # the script's layout

    def x_of(t: float) -> float:
        start, end = _view(page.locator(".timeline canvas"))
        return box["x"] + label_w + (t - start) / (end - start) * (box["width"] - label_w)

    y = box["y"] + axis_h + row * row_h + row_h / 2
    for _ in range(12):
        page.mouse.move(x_of(span[0] + span[1] / 2), y)
        page.mouse.wheel(0, -300)
        page.wait_for_timeout(30)
    page.mouse.move(x_of(span[0] + span[1] / 2), y)
    tip = page.locator(".timeline .tip").first
    assert tip.is_visible()
    assert SCRIPT + IMG in tip.inner_text()
    assert seen.dialogs == [] and seen.errors == [] and seen.requests == []
