"""The labeling page in a real headless Chromium (Selenium): click and keys, skip, undo, reload, 404.

Skipped when Selenium, Chromium or chromedriver is missing, unless ``LBENCH_REQUIRE_BROWSER=1``
(CI sets it after installing Debian's ``chromium`` and ``chromium-driver``): then it fails.
"""

from __future__ import annotations

import http.client
import os
import shutil
import threading
from pathlib import Path

import pytest

from lbench.annotate.app import AnnotateSession
from lbench.annotate.cli import make_annotate_server, url_of
from lbench.annotate.project import find_project
from lbench.label import import_answers
from lbench.label.formats import Parsed
from lbench.pool import LabelPool
from tests.conftest import run_cli
from tests.test_init import run_init, write_photos

from .conftest import batch_of

CPU = ["--trainer.accelerator", "cpu", "--data.init_args.device", "cpu"]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _browser() -> tuple[str, str]:
    """Chromium's and chromedriver's paths, or skip (fail with LBENCH_REQUIRE_BROWSER=1)."""
    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    binary = next((p for p in map(shutil.which, BROWSERS) if p), None)
    driver = shutil.which("chromedriver")
    missing += [name for name, path in (("chromium", binary), ("chromedriver", driver)) if path is None]
    if missing:
        why = f"needs {', '.join(missing)} (apt-get install chromium chromium-driver; pip install selenium)"
        if os.environ.get("LBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"LBENCH_REQUIRE_BROWSER=1 but the browser test {why}")
        pytest.skip(why)
    return binary, driver


@pytest.fixture
def chrome():
    """A headless Chromium driven by Selenium, 1000 x 700."""
    binary, driver_path = _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,700"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def served(tmp_path, capsys):
    """A project after ``init`` and ``select --query Random --budget 6``, served on a free port: (folder, url)."""
    _browser()  # skip before the work when there is no browser
    photos = write_photos(tmp_path / "photos")
    project = tmp_path / "proj"
    rc, _, err = run_init([photos, "--out", project, "--image_size", "32", "--classes", "cat,dog"], capsys)
    assert rc == 0, err
    rc, _, err = run_cli(["select", "-c", str(project / "project.yaml"), "--query", "Random", "--budget", "6", *CPU],
                         capsys)  # fmt: skip
    assert rc == 0, err
    session = AnnotateSession(find_project(project / "project.yaml", None), "ana", source="browser test", wait=5)
    server = make_annotate_server(session, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield project, url_of(server, "127.0.0.1")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _status(url: str, path: str) -> int:
    """The status of GET ``path`` sent as is (no client normalises the ``..``)."""
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_label_in_the_browser_by_click_and_keys_skip_undo_reload(served, chrome):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    project, url = served
    batch = batch_of(project)
    assert len(batch) == 6
    wait = WebDriverWait(chrome, 15)

    def text(element_id: str) -> str:
        return chrome.find_element(By.ID, element_id).text

    def shows(element_id: str, part: str) -> None:
        wait.until(lambda d: part in d.find_element(By.ID, element_id).text)

    def current() -> int:
        return int(chrome.find_element(By.ID, "image").get_attribute("data-index"))

    def press(key: str) -> None:
        chrome.find_element(By.TAG_NAME, "body").send_keys(key)

    chrome.get(url)
    shows("progress", "0 of 6 answered")
    assert current() == batch[0]
    wait.until(lambda d: d.execute_script("return document.getElementById('image').naturalWidth") > 0)
    buttons = [b.text for b in chrome.find_elements(By.CSS_SELECTOR, "#buttons button")]
    assert buttons == ["1 cat", "2 dog", "s skip", "u unsure", "z undo"]
    assert "model's guess:" in text("guess")

    chrome.find_element(By.CSS_SELECTOR, "#buttons button[data-label='cat']").click()  # by click
    shows("progress", "1 of 6 answered")
    wait.until(lambda d: current() == batch[1])
    press("2")  # by key: dog
    shows("progress", "2 of 6 answered")
    wait.until(lambda d: current() == batch[2])
    press("1")  # cat
    shows("progress", "3 of 6 answered")
    wait.until(lambda d: current() == batch[3])
    press("s")  # skip
    shows("progress", "4 of 6 answered")
    assert LabelPool.load(project / "pool.json").skipped == {batch[3]: "skip"}
    press("z")  # undo the skip
    shows("progress", "3 of 6 answered")
    shows("message", f"undone: item {batch[3]} is pending again (it was skip)")
    assert current() == batch[3]

    pool = LabelPool.load(project / "pool.json")
    assert pool.labels[batch[:4]].tolist() == [0, 1, 0, -1] and pool.skipped == {}
    assert sorted(pool.pending) == sorted(batch[3:])

    chrome.refresh()  # the answers are persisted: the page continues at the first open item
    shows("progress", "3 of 6 answered")
    wait.until(lambda d: current() == batch[3])
    tiles = chrome.find_elements(By.CSS_SELECTOR, "#grid .tile")
    assert [t.text for t in tiles] == ["cat", "dog", "cat", "", "", ""]
    chrome.find_elements(By.CSS_SELECTOR, "#grid .tile")[1].click()  # back to an answered item
    shows("answer", "answered: dog")

    # a refused answer is shown on the page: the item was labeled elsewhere in the meantime
    import_answers(project / "pool.json", Parsed.from_answers([batch[3]], ["dog"]), annotator="bo")
    chrome.find_elements(By.CSS_SELECTOR, "#grid .tile")[3].click()
    press("1")
    shows("message", f"item {batch[3]} is already labeled 'dog'; the file says 'cat'")
    assert "error" in chrome.find_element(By.ID, "message").get_attribute("class")
    shows("progress", "4 of 6 answered")  # and the page shows what is saved
    assert LabelPool.load(project / "pool.json").labels[batch[:4]].tolist() == [0, 1, 0, 1]

    # nothing outside the project: the browser's own request, and raw paths no client normalises
    outside = str(Path(project / "pool.json"))
    for path in ["/image/../../etc/passwd", "/static/../x", "/image/..%2f..%2fetc%2fpasswd", f"/image/{outside}",
                 "/etc/passwd", "/pool.json", "/image/99999", "/image/-1"]:  # fmt: skip
        assert _status(url, path) == 404, path
    chrome.get(url + "image/%2e%2e/%2e%2e/etc/passwd")
    assert "not found" in chrome.find_element(By.TAG_NAME, "body").text
    status = chrome.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/static/..%2f..%2fsetup.cfg').then((r) => done(r.status), () => done(-1));"
    )
    assert status == 404
