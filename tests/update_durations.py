"""Write tests/durations.json (seconds per test file) from a JUnit XML report of a full run.

    python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --junitxml=/tmp/junit.xml
    python tests/update_durations.py /tmp/junit.xml

``tests/conftest.py`` hands the longest files to the xdist workers first.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path


def file_seconds(junit: Path) -> dict[str, float]:
    """Seconds per test file (``tests/...py``), longest first."""
    per_file: Counter[str] = Counter()
    for case in ET.parse(junit).iter("testcase"):
        path = case.get("file") or case.get("classname", "").replace(".", "/") + ".py"
        per_file[path] += float(case.get("time") or 0.0)
    return {path: round(s, 1) for path, s in per_file.most_common()}


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(__file__).with_name("durations.json")
    out.write_text(json.dumps(file_seconds(Path(sys.argv[1])), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
