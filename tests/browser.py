"""A real headless browser for the report tests: Debian's `chromium` (which `.ci/run`
installs with apt-get when it is missing).

`require_chromium()` skips the calling test, with a message, only where neither chromium
nor apt-get exists; where apt-get exists but chromium does not, it fails, naming the
command that installs it, so CI cannot pass without the browser check.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome")


def require_chromium() -> str:
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    if shutil.which("apt-get") is None:
        pytest.skip(
            "no chromium and no apt-get to install it: the report is not checked in a browser"
        )
    pytest.fail(
        "chromium is not installed: `apt-get update && apt-get install -y chromium` (.ci/run does)"
    )


def _run(chromium: str, *args: str, budget_ms: int = 20000, timeout: int = 180) -> str:
    flags = [
        "--headless",
        "--no-sandbox",  # as root (CI containers)
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--allow-file-access-from-files",  # the probe page reads the report's frame
        f"--virtual-time-budget={budget_ms}",
    ]
    env = {**os.environ, "HOME": os.environ.get("HOME", "/tmp")}
    proc = subprocess.run(
        [chromium, *flags, *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def dump_dom(chromium: str, page: Path) -> str:
    """The page's DOM after it loaded (and its scripts ran)."""
    return _run(chromium, "--dump-dom", page.resolve().as_uri())


def screenshot(chromium: str, page: Path, out: Path, size: str = "1280,2000") -> Path:
    _run(chromium, f"--screenshot={out}", f"--window-size={size}", page.resolve().as_uri())
    assert out.is_file() and out.stat().st_size > 0
    return out


PROBE = """<!doctype html><html><body><pre id="result">pending</pre>
<iframe id="f" src="{src}" style="width:1280px;height:900px"></iframe>
<script>
document.getElementById('f').addEventListener('load', () => {{
  const d = document.getElementById('f').contentDocument;
  const images = Array.from(d.images);
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  document.getElementById('result').textContent = JSON.stringify(
    {{images: images.length, broken: broken, tables: d.querySelectorAll('table').length}});
}});
</script></body></html>
"""


def loaded_images(chromium: str, page: Path, workdir: Path) -> dict:
    """Load `page` in a frame of a probe page and report its images (how many, which
    failed to decode) and its tables, as the browser saw them."""
    probe = workdir / "probe.html"
    probe.write_text(PROBE.format(src=page.resolve().as_uri()))
    dom = dump_dom(chromium, probe)
    start = dom.index('<pre id="result">') + len('<pre id="result">')
    text = dom[start : dom.index("</pre>", start)]
    assert text != "pending", "the report did not finish loading in the browser"
    return json.loads(text.replace("&quot;", '"'))
