"""label_my_images.ipynb in a real browser: a fresh JupyterLab server, headless Chromium driven by playwright, a
round run from the notebook, labels given with a button, a key and undo, and the log and CSV on disk checked."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from clinical_utils.labeling import LabelingProject

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "label_my_images.ipynb"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


# the notebook's kernel started, connected and idle (JupyterLab's status bar says "Idle" before the kernel exists)
KERNEL_READY = """() => {
  const kernel = window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel;
  return kernel?.connectionStatus === "connected" && kernel?.status === "idle";
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(root: Path, settings: Path, log: Path) -> tuple[subprocess.Popen, str | None]:
    """A JupyterLab server on a free port of 127.0.0.1 and its URL, or None for the URL when it did not come up.
    port_retries=0: if another process took the port meanwhile, the server stops instead of moving to another."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
         "--ip=127.0.0.1", "--allow-root", "--IdentityProvider.token=", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env={**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings), "OMP_NUM_THREADS": "1"},
        stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
    while time.monotonic() < deadline and server.poll() is None:
        try:  # straight to the server: a proxy in the environment must not answer for it
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{url}/api/status", timeout=2)
            return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    return server, None


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server serving tmp_path, no token, news and update checks off; yields its URL."""
    settings = tmp_path / "lab-settings"
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    log = tmp_path / "jupyterlab.log"
    for _ in range(3):  # a port taken between free_port() and the server's bind: try another
        server, url = start_lab(tmp_path, settings, log)
        if url is not None:
            break
    else:
        pytest.fail(f"JupyterLab did not start (exit {server.poll()}); its log ends:\n"
                    + "\n".join(log.read_text().splitlines()[-15:]))
    yield url
    server.terminate()
    server.wait(timeout=30)


def open_and_run(browser, url: str):
    """A new page on the notebook, run from the top once its kernel is ready."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_function(KERNEL_READY, timeout=60_000)  # before it, run-all would run nothing
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    return page


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: install Debian's chromium package (apt-get install "
                                             "chromium) to run the browser test")
def test_an_expert_labels_in_the_browser_and_the_labels_are_on_disk(lab, folder, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    root, labels, truth = folder
    nb = parameterize_notebook(load_notebook_node(str(NOTEBOOK)), {
        "folder": str(root), "labels": str(labels), "rare_classes": ["lesion"], "strategy": "flqmi", "budget": 4,
        "epochs": 2, "batch_size": 8})
    # the server's own Python kernel: a notebook naming a kernel the server lacks opens a "Select Kernel" dialog
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "label.ipynb")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = open_and_run(browser, f"{lab}/lab/tree/label.ipynb")
        try:
            progress = page.locator(".cu-progress")
            expect(progress).to_have_text("0 of 4 labeled", timeout=60_000)
            page.locator(".cu-buttons button", has_text="1 clear").click()  # a class button
            expect(progress).to_have_text("1 of 4 labeled", timeout=30_000)
            page.locator(".cu-label").click(position={"x": 5, "y": 5})  # focus the grid, then keys
            page.keyboard.press("2")  # the second class: lesion
            expect(progress).to_have_text("2 of 4 labeled", timeout=30_000)
            page.keyboard.press("Backspace")  # undo the lesion
            expect(progress).to_have_text("1 of 4 labeled", timeout=30_000)
            page.keyboard.press("s")
            expect(progress).to_have_text("1 of 4 labeled, 1 set aside", timeout=30_000)
        finally:
            page.screenshot(path=str(tmp_path / "labeling.png"))  # a test artifact, never committed
        # close everything: the kernel and the page; then come back, run the notebook again, and go on
        page.evaluate("window.jupyterapp.shell.currentWidget.sessionContext.session.shutdown()")
        page.close()
        page = open_and_run(browser, f"{lab}/lab/tree/label.ipynb")
        try:
            progress = page.locator(".cu-progress")
            expect(progress).to_have_text("1 of 4 labeled, 1 set aside", timeout=60_000)
            page.locator(".cu-label").click(position={"x": 5, "y": 5})
            page.keyboard.press("1")
            expect(progress).to_have_text("2 of 4 labeled, 1 set aside", timeout=30_000)
        finally:
            page.screenshot(path=str(tmp_path / "labeling_resumed.png"))
            print(f"screenshots: {tmp_path}/labeling*.png")
            browser.close()

    project = LabelingProject(root, labels)  # what a new kernel finds on disk
    picks = project.current_round()["picks"]
    assert [e["action"] for e in project.log] == ["round", "label", "label", "undo", "skip", "label"]
    assert project.log[2]["label"] == "lesion" and project.log[2]["path"] == picks[1]
    assert project.labels() == {picks[0]: "clear", picks[2]: "clear"} and project.status(picks[1]) == "skip"
    assert open(project.labels_csv).read().count(picks[0]) == 1
