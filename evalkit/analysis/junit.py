"""JUnit XML for `evalkit compare --junit FILE`: one testcase per checked metric, a failure per regression,
so CI systems show the regression gate's result next to the other tests."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

from evalkit.analysis.compare import Comparison


def _fmt(x: float) -> str:
    return "nan" if x is None or math.isnan(x) else f"{x:.4g}"


def junit_xml(result: Comparison) -> str:
    checked = result.checked
    failures = result.failures
    suites = ET.Element("testsuites", tests=str(len(checked)), failures=str(len(failures)), errors="0")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="evalkit compare",
        tests=str(len(checked)),
        failures=str(len(failures)),
        errors="0",
        skipped="0",
    )
    props = ET.SubElement(suite, "properties")
    for key, value in (
        ("base", result.base),
        ("new", result.new),
        ("alpha", str(result.alpha)),
        ("resamples", str(result.n_resamples)),
        ("seed", str(result.seed)),
        ("holm_family", result.family),
    ):
        ET.SubElement(props, "property", name=key, value=value)
    for m in checked:
        case = ET.SubElement(
            suite, "testcase", classname=f"evalkit.compare.{m.task}", name=m.metric, time="0"
        )
        summary = (
            f"{m.task}.{m.metric}: base {_fmt(m.base)}, new {_fmt(m.new)}, diff {_fmt(m.diff)} "
            f"[{_fmt(m.ci_low)}, {_fmt(m.ci_high)}], p {_fmt(m.p_value)}, p_holm {_fmt(m.p_holm)}, "
            f"{m.n_units} units; {m.verdict}"
        )
        if m.failed:
            rule = "; ".join(m.rules) or "significant loss"
            failure = ET.SubElement(
                case, "failure", message=f"regression ({rule}): {summary}", type="regression"
            )
            failure.text = summary
        else:
            ET.SubElement(case, "system-out").text = summary
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write_junit(result: Comparison, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_xml(result), encoding="utf-8")
