"""The report in a real headless Chromium (system package, driven by Playwright).

Skips, saying why, where Chromium or Playwright is missing; ``.ci/run`` installs both.
Never runs ``playwright install``: it launches the system browser by path.
"""

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
FAILING_ID = "alpha-cpu-float32-nn_sparse-special_values"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run "
                             "installs it)")]


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not "
                                   "installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _watch(page):
    """Collect dialogs (dismissed) and console errors (CSP violations land there)."""
    seen = {"dialogs": [], "errors": []}
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    return seen


def test_report_in_chromium(browser, report_html, script_message, tmp_path):
    path = tmp_path / "index.html"
    path.write_text(report_html, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    seen = _watch(page)
    page.goto(path.as_uri())

    board = page.locator("table.board").first
    assert board.is_visible()
    box = board.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 1280  # fits at 1280 px

    # a scoreboard cell opens its per-feature outcomes under the board
    page.locator("a.cell.v-fail").first.click()
    panel = page.locator("#panel")
    assert panel.is_visible()
    assert "special_values" in panel.inner_text()

    # a drill-down opens on click and shows its reproducer, with a copy button
    drill = page.locator("details.drill", has_text=FAILING_ID)
    repro = drill.locator("pre.repro")
    assert not repro.is_visible()
    drill.locator("> summary").click()
    assert repro.is_visible()
    assert "alpha.sparse_xent(labels, logits)" in repro.inner_text()
    assert drill.locator("table.cmp-t tr.differs").is_visible()
    assert drill.locator("button.copy", has_text="Copy script").is_visible()

    # the target's <script> message is text on the page, and nothing ran
    hostile = page.locator("details.drill", has_text="beta").first
    hostile.locator("> summary").click()
    assert hostile.locator("pre.msg").inner_text() == script_message
    page.wait_for_timeout(200)
    page.screenshot(path=tmp_path / "report.png")
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert seen == {"dialogs": [], "errors": []}


def test_report_reads_without_javascript(browser, report_html, tmp_path):
    path = tmp_path / "index.html"
    path.write_text(report_html, encoding="utf-8")
    context = browser.new_context(java_script_enabled=False,
                                  viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    seen = _watch(page)
    page.goto(path.as_uri())
    assert not page.locator("button.copy").first.is_visible()  # needs JavaScript: hidden
    # a cell is a link to its outcome table, which the browser reveals
    cell = page.locator("a.cell.v-fail").first
    target = cell.get_attribute("href")
    cell.click()
    assert page.locator(target).is_visible()
    drill = page.locator("details.drill", has_text=FAILING_ID)
    drill.locator("> summary").click()
    assert drill.locator("pre.repro").is_visible()
    page.screenshot(path=tmp_path / "report-nojs.png")
    context.close()
    assert seen == {"dialogs": [], "errors": []}
