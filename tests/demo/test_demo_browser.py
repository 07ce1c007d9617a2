"""The demo page in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium; nothing is downloaded) against ``pixelrnn demo`` served
on 127.0.0.1 with the shipped Diagonal BiLSTM.

With ``PIXELRNN_DEMO_SCREENSHOTS=DIR`` the test also saves the page's screenshots there (the
pictures of docs/demo.md).
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import WebDriverWait

from pixelrnn.data import load_dataset

pytestmark = pytest.mark.browser

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TIMEOUT = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[str]:
    """``pixelrnn demo`` in a subprocess, as a user starts it; its URL."""
    port = _free_port()
    command = [sys.executable, "-m", "pixelrnn", "demo", "--pretrained", "diagonal-bilstm-mnist"]
    command += ["--port", str(port), "--data-dir", str(data_dir)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "api/models", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode() if process.stdout else ""
                    pytest.fail(f"pixelrnn demo did not start:\n{output}")
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (apt install them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,1700")
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    driver.set_script_timeout(TIMEOUT)
    yield driver
    driver.quit()


def _wait(driver, condition, what: str) -> object:
    return WebDriverWait(driver, TIMEOUT).until(lambda d: condition(d), message=what)


def _data_url_pixels(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,"), url[:40]
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as img:
        return np.asarray(img.convert("L"))


def _screenshot(driver, name: str) -> None:
    folder = os.environ.get("PIXELRNN_DEMO_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


def _text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def _type(driver, element_id: str, text: str) -> None:
    """Replace an input's value as a user would: clear it, type."""
    field = driver.find_element("id", element_id)
    field.clear()
    field.send_keys(text)


def _sample(driver, n: int) -> None:
    _type(driver, "sample-n", str(n))
    driver.find_element("id", "sample-button").click()


def test_sample_complete_and_score_in_the_browser(server, browser, data_dir, tmp_path) -> None:
    driver = browser
    driver.get(server)
    _wait(driver, lambda d: "28×28" in _text(d, "model-info"), "the model's description")

    # sample: the grid streams in row by row, then is done (every status the page shows is
    # recorded: a row's status may last less than the driver's polling interval)
    driver.execute_script(
        "window.statuses = []; const el = document.getElementById('sample-status');"
        "new MutationObserver(() => window.statuses.push(el.textContent))"
        ".observe(el, {childList: true, characterData: true, subtree: true});"
    )
    _sample(driver, 16)
    grid = driver.find_element("id", "sample-grid")
    _wait(driver, lambda d: grid.get_attribute("data-done") == "1", "the finished grid")
    statuses = driver.execute_script("return window.statuses")
    assert any(s.startswith("row ") for s in statuses), statuses  # a row event was shown
    pixels = _data_url_pixels(grid.get_attribute("src"))
    assert pixels.shape[0] > 4 * 28 and {0, 255} <= set(np.unique(pixels).tolist())

    # complete: upload a digit, erase its lower part with the brush, three completions
    digit = load_dataset("binarized-mnist", "test", data_dir).batch(slice(7, 8))[0, 0].numpy()
    upload = tmp_path / "digit.png"
    Image.fromarray((digit * 255).astype(np.uint8), "L").save(upload)
    driver.find_element("id", "image-file").send_keys(str(upload))
    _wait(driver, lambda d: "paint over" in _text(d, "complete-status"), "the upload")
    canvas = driver.find_element("id", "canvas")
    scale = canvas.size["width"] / 28
    driver.execute_script("document.getElementById('brush').value = 2")  # a range input
    actions = ActionChains(driver)
    start_x, start_y = -canvas.size["width"] / 2 + 3 * scale, 4 * scale  # image (3, 18)
    actions.move_to_element_with_offset(canvas, int(start_x), int(start_y)).click_and_hold()
    for _ in range(11):
        actions.move_by_offset(int(2 * scale), 0)
    actions.move_by_offset(0, int(4 * scale)).release().perform()
    erased = np.array(driver.execute_script("return Array.from(state.erase)")).reshape(28, 28)
    assert 20 < erased.sum() < 28 * 28 / 2  # a band across the lower half, not everything
    _type(driver, "complete-n", "3")
    driver.find_element("id", "complete-button").click()
    _wait(driver, lambda d: len(d.find_elements("css selector", "img.completion")) == 3, "3")
    masked = _data_url_pixels(driver.find_element("id", "complete-input").get_attribute("src"))
    assert np.array_equal(masked == 128, erased.astype(bool))  # grey exactly where erased
    for img in driver.find_elements("css selector", "img.completion"):
        completion = _data_url_pixels(img.get_attribute("src"))
        known = erased == 0
        assert np.array_equal(completion[known], (digit * 255)[known])  # known pixels kept
        assert set(np.unique(completion).tolist()) <= {0, 255}

    # score: nats, bits/dim and the heat map
    driver.find_element("id", "score-button").click()
    _wait(driver, lambda d: "nats" in _text(d, "score-nats"), "the score")
    nats = float(_text(driver, "score-nats").split()[0])
    assert 0 < nats < 784 * 10
    assert driver.find_element("id", "heatmap").get_attribute("src").startswith("data:image/png")
    _screenshot(driver, "demo-page.png")


def test_bad_uploads_and_requests_get_a_message_and_the_server_goes_on(
    server, browser, tmp_path
) -> None:
    driver = browser
    driver.get(server)
    _wait(driver, lambda d: "28×28" in _text(d, "model-info"), "the model's description")
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("this is not a picture")
    driver.find_element("id", "image-file").send_keys(str(not_an_image))
    _wait(driver, lambda d: "not an image" in _text(d, "complete-status"), "the upload error")
    status = driver.find_element("id", "complete-status")
    assert "error" in status.get_attribute("class")

    wrong_size = tmp_path / "big.png"
    Image.new("L", (40, 30)).save(wrong_size)
    driver.find_element("id", "image-file").send_keys(str(wrong_size))
    _wait(driver, lambda d: "40x30" in _text(d, "complete-status"), "the size error")

    _sample(driver, 1000)
    _wait(driver, lambda d: "1..64" in _text(d, "sample-status"), "the request cap")
    _screenshot(driver, "demo-errors.png")

    # still serving: a small sample completes
    _sample(driver, 2)
    _wait(driver, lambda d: "done in" in _text(d, "sample-status"), "a sample after the errors")


def test_chromium_is_the_systems() -> None:
    """The browser test uses the system browser, never a downloaded one."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed")
    assert shutil.which("chromium") == CHROMIUM
