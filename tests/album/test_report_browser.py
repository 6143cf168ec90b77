"""The duplicate report in a real headless Chromium (Debian's `chromium` driven by Playwright, as the API Explorer's
test does): 1,000 groups stay usable (50 a page, paging and sorting work), the summary is on top, each group's kept
copy comes first and is marked, and paths never wrap inside a word. A screenshot lands in tests/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from image_similarity.album.duplicate_finder import DuplicateResult, Group, ImageEntry
from image_similarity.album.duplicate_report import GROUPS_PER_PAGE, write_report
from image_similarity.album.photo_decode import PhotoFacts
from PIL import Image
from playwright.sync_api import Page

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
GROUPS = 1000
LONG_NAME = "a-very-long-file-name-from-a-phone-export-IMG_20240501_101010_HDR_portrait_edited_final.jpg"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """1,000 groups of 2 or 3 small photos, one of them with a long folder path and a long file name."""
    root = tmp_path_factory.mktemp("report")
    deep = root / "Pictures" / "2024" / "holidays-in-the-mountains" / "exported-from-phone"
    deep.mkdir(parents=True)
    groups = []
    for number in range(GROUPS):
        size = 3 if number % 7 == 0 else 2
        images = []
        for copy in range(size):
            folder = deep if (number, copy) == (0, 1) else root
            path = folder / (LONG_NAME if folder is deep else f"g{number:04d}-{copy}.jpg")
            colour = (number * 37 % 256, number * 91 % 256, 255 - copy * 60)
            Image.new("RGB", (48 + copy * 16, 36 + copy * 12), colour).save(path, quality=90)
            facts = PhotoFacts(48 + copy * 16, 36 + copy * 12, "JPEG", "2024-05-01T10:00:00" if copy == 0 else None)
            bytes_ = 1000 * (number % 50 + 1) if copy else 5000
            images.append(ImageEntry(str(path), 1.0 if copy == 0 else 0.9, copy == 2, bytes_, facts))
        groups.append(Group(images))
    result = DuplicateResult("test-model", 0.79, "largest", 2500, [(str(root / "bad.jpg"), "not an image file")],
                             groups)
    page = root / "duplicates.html"
    write_report(page, result, lambda location: Path(location).read_bytes())
    return page


@pytest.fixture
def page(browser, report) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(("file://", "data:")) else outside.append(r.url))
    page.goto(report.as_uri())
    yield page
    context.close()
    assert not outside, f"the report asked for something off this machine: {outside}"


def visible_groups(page: Page) -> list[str]:
    return page.eval_on_selector_all("section.group:not([hidden]) h2", "hs => hs.map(h => h.textContent)")


def test_the_summary_comes_first_and_one_page_of_groups_is_shown(page):
    summary = page.locator(".summary")
    assert "1000 groups" in summary.inner_text() and "2000 images" not in summary.inner_text()
    assert summary.bounding_box()["y"] < page.locator("section.group:not([hidden])").first.bounding_box()["y"]
    assert "1 skipped file" in summary.inner_text()
    shown = visible_groups(page)
    assert len(shown) == GROUPS_PER_PAGE and shown[0].startswith("Group 1:")
    assert page.locator("#page").inner_text() == f"page 1 of {GROUPS // GROUPS_PER_PAGE}"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "album-duplicates-report.png"), full_page=False)


def test_paging_walks_through_all_groups(page):
    page.click("#next")
    assert visible_groups(page)[0].startswith(f"Group {GROUPS_PER_PAGE + 1}:")
    assert page.locator("#prev").is_enabled()
    for _ in range(GROUPS // GROUPS_PER_PAGE):
        page.click("#next") if page.locator("#next").is_enabled() else None
    assert visible_groups(page)[-1].startswith(f"Group {GROUPS}:")
    assert page.locator("#next").is_disabled()


def test_sorting_by_bytes_and_by_size(page):
    page.select_option("#sort", "bytes")
    freed = page.eval_on_selector_all("section.group", "s => s.map(g => Number(g.dataset.bytes))")
    assert freed == sorted(freed, reverse=True) and freed[0] > freed[-1]
    page.select_option("#sort", "size")
    shown = visible_groups(page)
    assert all(": 3 images" in title for title in shown) and shown[0].startswith("Group 1:")
    page.select_option("#sort", "order")
    assert visible_groups(page)[0].startswith("Group 1:")


def test_the_kept_copy_is_first_and_marked(page):
    firsts = page.eval_on_selector_all(
        "section.group:not([hidden]) .row",
        "rows => rows.map(r => [r.firstElementChild.className, r.firstElementChild.querySelector('.badge').textContent,"
        " r.querySelectorAll('figure.keep').length])")
    assert firsts == [["keep", "KEEP", 1]] * GROUPS_PER_PAGE


def test_paths_never_break_inside_a_word(page):
    figure = page.locator("figure", has=page.locator(f"span.name[title$='{LONG_NAME}']"))
    name = figure.locator("span.name")
    style = name.evaluate("e => [getComputedStyle(e).whiteSpace, getComputedStyle(e).wordBreak,"
                          " getComputedStyle(e.parentElement).overflowWrap]")
    assert style == ["nowrap", "normal", "normal"]
    line = float(name.evaluate("e => parseFloat(getComputedStyle(e).lineHeight) || e.getBoundingClientRect().height"))
    assert name.bounding_box()["height"] <= line + 1  # the long name stays on one line (its end is elided)
    folder = figure.locator("span.folder")
    lines = folder.evaluate("""e => {
        const range = document.createRange(); range.selectNodeContents(e);
        return Array.from(range.getClientRects()).length; }""")
    text = folder.inner_text().replace("\n", "")
    assert lines > 1 and text.endswith("/exported-from-phone/")  # the folder wraps, at its slashes only
    words = page.eval_on_selector_all(
        "section.group:not([hidden]) .folder span, section.group:not([hidden]) .fact", """spans => spans.map(e => {
            const r = document.createRange(); r.selectNodeContents(e); return r.getClientRects().length; })""")
    assert len(words) > 300 and set(words) == {1}  # every folder name and every fact sits on one line
