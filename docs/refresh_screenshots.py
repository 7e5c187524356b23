"""Refresh the README's screenshots (docs/screenshots/*.png) with the browser tests' own page driving.

Run from anywhere, with the project's virtual environment active:

    python docs/refresh_screenshots.py

It needs what the browser tests need: Chromium at /usr/bin/chromium (`apt-get install -y chromium
chromium-driver`), the playwright package (requirements-dev.txt) and ../shared/reference beside the
repository; it takes two or three minutes on 2 CPU cores. It runs tests/app/test_browser.py and
tests/app/test_browser_images.py (the demo studio, driven through tests/app/studio_page.py) with
`--screenshots` set to a temporary folder, and copies the screenshots into docs/screenshots/ only when
every test passed, so the README never shows a state the tests did not check. A plain `python -m pytest`
saves its screenshots in a temporary folder and leaves the tracked ones alone. Review the new images
(`git diff --stat docs/screenshots`) before committing.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "docs" / "screenshots"
TESTS = [REPO / "tests" / "app" / name for name in ("test_browser.py", "test_browser_images.py")]


def main() -> int:
    sys.path.insert(0, str(REPO))  # the tests import cascade_core, ui and tests.* from the repository
    import pytest

    with tempfile.TemporaryDirectory(prefix="screenshots-") as folder:
        code = pytest.main(["-q", "-rs", "-p", "no:cacheprovider", "--rootdir", str(REPO), f"--screenshots={folder}",
                            *map(str, TESTS)])
        if code != pytest.ExitCode.OK:
            print(f"The browser tests did not pass (exit code {int(code)}); docs/screenshots/ is unchanged.",
                  file=sys.stderr)
            return int(code) or 1
        taken = sorted(Path(folder).glob("*.png"))
        if not taken:  # every test skipped: no Chromium or no playwright
            print("No screenshots were taken (see the skip reasons above); docs/screenshots/ is unchanged.",
                  file=sys.stderr)
            return 1
        TARGET.mkdir(parents=True, exist_ok=True)
        for path in taken:
            shutil.copyfile(path, TARGET / path.name)
    print(f"{len(taken)} screenshots written to {TARGET.relative_to(REPO)}/: {', '.join(p.name for p in taken)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
