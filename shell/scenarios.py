#!/usr/bin/env python3
"""Which integration scenarios each platform compiles, and why the others do not.

    python3 shell/scenarios.py            the table README's "Platforms" quotes
    python3 shell/scenarios.py --list     every scenario with its mark
    python3 shell/scenarios.py --count unix|windows
                                          how many scenarios the family compiles

Reads tests/suite/: a module or a test marked `#[cfg(unix)] // REASON` is Unix
only, `#[cfg(windows)] // REASON` Windows only; a test marked
`#[cfg_attr(windows, ignore = "REASON")]` is shared but not run on Windows (it is
compiled there and reported as ignored, with its reason); so is a Unix-only mark
whose reason begins "not ported" or "Wine" (Windows could show it; the suite or
Wine cannot yet, and it is not compiled there). Everything else is
shared: compiled and run on every platform. What actually ran is counted by the
runs themselves (shell/test.sh's closing line); this is the plan they follow.
"""
import re
import sys
from collections import defaultdict
from pathlib import Path

SUITE = Path(__file__).resolve().parent.parent / "tests" / "suite"
MARK = re.compile(r"#\[cfg\((unix|windows)\)\]\s*(?://\s*(.*))?")
IGNORE = re.compile(r'ignore\s*=\s*"([^"]*)"')


def module_marks():
    """{module: (family, reason)} from tests/suite/mod.rs."""
    marks, pending, reason = {}, None, []
    for line in (SUITE / "mod.rs").read_text().splitlines():
        line = line.strip()
        if line.startswith("//") and not line.startswith("//!"):
            reason.append(line.lstrip("/ ").strip())
        elif (m := MARK.fullmatch(line)):
            pending = m.group(1)
        elif (m := re.fullmatch(r"mod (\w+);", line)):
            if pending:
                marks[m.group(1)] = (pending, " ".join(reason))
            pending, reason = None, []
        else:
            reason = []
    return marks


def scenarios():
    """(module, test, kind, reason) for every #[test], kind one of shared, unix,
    windows, not-on-windows."""
    modules = module_marks()
    for path in sorted(SUITE.glob("*.rs")):
        if path.name == "mod.rs":
            continue
        module = path.stem
        attrs, open_attr = [], False
        for line in path.read_text().splitlines():
            stripped = line.strip()
            # rustfmt spreads a long attribute over lines: `#[cfg_attr(` … `)]`.
            if open_attr:
                attrs[-1] += " " + stripped
                open_attr = not stripped.endswith("]")
                continue
            if stripped.startswith("#[") or stripped.startswith("///"):
                attrs.append(stripped)
                open_attr = stripped.startswith("#[") and not stripped.split("//")[0].rstrip().endswith("]")
                continue
            if (m := re.match(r"fn (\w+)", stripped)) and "#[test]" in attrs:
                text = " ".join(attrs)
                kind, reason = "shared", ""
                if module in modules:
                    kind, reason = modules[module]
                elif (mark := next((MARK.fullmatch(a) for a in attrs if MARK.fullmatch(a)), None)):
                    kind, reason = mark.group(1), mark.group(2) or ""
                # A Unix scenario whose reason says "not ported" (or names what
                # Wine lacks) is shared in principle: Windows could show it.
                if kind == "unix" and reason.startswith(("not ported", "Wine")):
                    kind = "not-on-windows"
                elif "cfg_attr(" in text and "windows" in text:
                    found = IGNORE.search(text)
                    kind, reason = "not-on-windows", found.group(1) if found else ""
                yield module, m.group(1), kind, reason
            if stripped and not stripped.startswith("#[") and not stripped.startswith("///"):
                attrs = []


def main():
    rows = list(scenarios())
    if len(sys.argv) == 3 and sys.argv[1] == "--count":
        # How many scenarios the family compiles (run, ignored or type-checked).
        family = {"unix": ("shared", "not-on-windows", "unix"),
                  "windows": ("shared", "not-on-windows", "windows")}[sys.argv[2]]
        print(sum(1 for row in rows if row[2] in family))
        return
    if "--list" in sys.argv:
        for module, test, kind, reason in rows:
            print(f"{kind:15} {module}::{test}  {reason}")
        return
    count = defaultdict(int)
    for _, _, kind, _ in rows:
        count[kind] += 1
    shared = count["shared"] + count["not-on-windows"]
    print(f"scenarios: {len(rows)}; shared {shared} (of them not run on Windows: "
          f"{count['not-on-windows']}); Unix only {count['unix']}; Windows only {count['windows']}")
    reasons = defaultdict(list)
    for module, test, kind, reason in rows:
        if kind != "shared":
            reasons[(kind, reason)].append(f"{module}::{test}")
    for (kind, reason), tests in sorted(reasons.items()):
        print(f"| {kind} | {len(tests)} | {reason} |")


if __name__ == "__main__":
    main()
