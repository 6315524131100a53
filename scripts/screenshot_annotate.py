"""Make docs/annotate.png: the labeling page of a generated project, in headless Chromium, 1000 x 700.

    .venv/bin/python scripts/screenshot_annotate.py [--out docs/annotate.png]

Generates a folder of 256 x 256 shapes (circle, square, triangle; 4 of each already labeled in
class folders, 40 unlabeled), runs ``lbench init`` and ``lbench select --train true --query
Margin --budget 12`` (a proxy trained on the 12 labels, so the page shows real guesses), gives
three answers through the page's own code path, and takes the screenshot with Selenium on the
fourth item. Needs Debian's ``chromium`` and ``chromium-driver`` and ``pip install selenium``.
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from PIL import Image, ImageDraw

from lbench.annotate.app import AnnotateSession
from lbench.annotate.cli import make_annotate_server, url_of
from lbench.annotate.project import find_project
from lbench.cli import main as lbench

CLASSES = ("circle", "square", "triangle")
SIZE = 256


def shape(kind: str, rng: random.Random) -> Image.Image:
    """One shape of a random colour, size and place on a light random background."""
    bg = tuple(rng.randint(215, 250) for _ in range(3))
    fg = tuple(rng.randint(20, 170) for _ in range(3))
    img = Image.new("RGB", (SIZE, SIZE), bg)
    draw = ImageDraw.Draw(img)
    r = rng.randint(55, 95)
    cx, cy = rng.randint(r + 10, SIZE - r - 10), rng.randint(r + 10, SIZE - r - 10)
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif kind == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fg)
    else:
        turn = rng.uniform(0, 2 * math.pi)
        draw.polygon([(cx + r * math.cos(turn + k * 2 * math.pi / 3), cy + r * math.sin(turn + k * 2 * math.pi / 3))
                      for k in range(3)], fill=fg)  # fmt: skip
    return img


def make_folder(root: Path, seed: int = 0) -> dict[str, str]:
    """The image folder; returns the class of each unlabeled image (by relative path)."""
    rng = random.Random(seed)
    truth = {}
    for kind in CLASSES:
        (root / kind).mkdir(parents=True)
        for k in range(4):
            shape(kind, rng).save(root / kind / f"{kind}_{k}.png")
    (root / "new").mkdir()
    for k in range(40):
        kind = rng.choice(CLASSES)
        rel = f"new/photo_{k:03d}.png"
        shape(kind, rng).save(root / rel)
        truth[rel] = kind
    return truth


def run(args: list[str]) -> None:
    """``lbench ARGS`` in this process; exits on an error."""
    rc = lbench(args)
    if rc not in (0, None):
        sys.exit(f"lbench {' '.join(args)} failed ({rc})")


def screenshot(out: Path) -> None:
    """Build the project, serve it, answer three items, and save the page's screenshot to ``out``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory(prefix="lbench-shot-") as tmp:
        photos = Path(tmp) / "shapes"
        truth = make_folder(photos)
        project = Path(tmp) / "shapes_project"
        run(["init", str(photos), "--classes", ",".join(CLASSES), "--out", str(project), "--image_size", "64"])
        run(["select", "-c", str(project / "project.yaml"), "--train", "true", "--query", "Margin", "--budget", "12",
             "--trainer.accelerator", "cpu", "--data.init_args.device", "cpu"])  # fmt: skip
        session = AnnotateSession(find_project(project / "project.yaml", None), "ana", source="screenshot")
        for it in session.items()[:3]:
            session.answer(it.index, truth[it.path])
        server = make_annotate_server(session, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1000,700"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                                  options=options)  # fmt: skip
        try:
            driver.execute_cdp_cmd(  # the page itself 1000 x 700, whatever the window's frame takes
                "Emulation.setDeviceMetricsOverride",
                {"width": 1000, "height": 700, "deviceScaleFactor": 1, "mobile": False},
            )
            driver.get(url_of(server, "127.0.0.1"))
            wait = WebDriverWait(driver, 20)
            wait.until(lambda d: "3 of 12 answered" in d.find_element(By.ID, "progress").text)
            wait.until(lambda d: d.execute_script(
                "return [...document.images].every((i) => i.complete && i.naturalWidth > 0)"))  # fmt: skip
            out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(out))
        finally:
            driver.quit()
            server.shutdown()
            server.server_close()
    with Image.open(out) as im:
        print(f"wrote {out} ({im.width} x {im.height})")


def main() -> None:
    """Parse the arguments and make the screenshot."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "annotate.png"))
    screenshot(Path(p.parse_args().out))


if __name__ == "__main__":
    main()
