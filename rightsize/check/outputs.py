"""A gate's result rendered for CI: JUnit XML (one test case per criterion), a Markdown pull-request
comment, and the files and step summary they are written to."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from rightsize import markdown as md
from rightsize.check.result import CheckResult
from rightsize.errors import RightsizeError
from rightsize.held_out import verdict_sentence
from rightsize.recommend import Objective, multiplicity_sentence
from rightsize.tables import human_joules


def to_junit(result: CheckResult) -> str:
    """JUnit XML: one ``testsuite`` with one ``testcase`` per criterion (failure / skipped as JUnit has them)."""
    failures = sum(c.status == "fail" for c in result.criteria)
    skipped = sum(c.status == "skipped" for c in result.criteria)
    counts = {"tests": str(len(result.criteria)), "failures": str(failures), "errors": "0", "skipped": str(skipped)}
    root = ET.Element("testsuites", {"name": "rightsize check", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": f"rightsize.check.{result.task}", **counts, "time": "0"})
    props = ET.SubElement(suite, "properties")
    for name, value in (("current", result.current["label"]), ("task", result.task), ("split", result.split),
                        ("metric", result.metric), ("energy_source", result.energy_source),
                        ("tolerance_pct", f"{result.tolerance_pct:g}")):
        ET.SubElement(props, "property", {"name": name, "value": str(value)})
    for c in result.criteria:
        case = ET.SubElement(suite, "testcase", {"classname": f"rightsize.check.{result.task}", "name": c.name,
                                                  "time": "0"})
        if c.status == "fail":
            failure = ET.SubElement(case, "failure", {"message": c.message, "type": c.name})
            failure.text = c.message
        elif c.status == "skipped":
            ET.SubElement(case, "skipped", {"message": c.message})
        else:
            ET.SubElement(case, "system-out").text = c.message
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def to_markdown(result: CheckResult) -> str:
    """A pull-request comment: verdict, criteria table, current vs cheapest adequate, energy caveat.
    Names, messages and errors are escaped (rightsize.markdown)."""
    icon = {"pass": "✅", "fail": "❌", "skipped": "⏭️"}
    head = "✅ PASS" if result.passed else "❌ FAIL"
    lines = [f"### rightsize check: {head} — {md.code(result.current['label'])} on {md.text(result.task)}", "",
             md.text(result.summary().split(" — ", 1)[-1]), "",
             "| criterion | result | details |", "|---|---|---|"]
    for c in result.criteria:
        lines.append(f"| {c.name} | {icon[c.status]} {c.status} | {md.text(c.message)} |")
    lines += ["", f"| config | {md.text(result.metric)} [95% CI] | J/query | params | adequate |",
              "|---|---|---|---|---|"]
    rows = [("current", result.current)]
    if result.cheapest_adequate is not None and result.cheapest_adequate["key"] != result.current["key"]:
        rows.append(("cheapest adequate", result.cheapest_adequate))
    for role, cfg in rows:
        lines.append(f"| {role}: {md.code(cfg['label'], table=True)} | {_metric_cell(cfg)} | "
                     f"{human_joules(cfg['joules_per_query'])} | {_params(cfg['n_params'])} | "
                     f"{_yes_no(cfg['adequate'])} |")
    target = result.judged_target().description(result.metric)
    lines += ["", md.text(f"Target: {target}, from {result.target['from']}. {result.split.capitalize()} split, "
                          f"{result.n_examples} examples; tolerance {result.tolerance_pct:g}%.")]
    if result.multiplicity:
        lines.append(md.text(multiplicity_sentence(result.multiplicity) + "."))
    if result.test_verdict:
        lines.append(md.text(verdict_sentence(result.test_verdict)))
    if result.objective.get("name") == "lifetime":
        lines.append(f"Cheaper means {Objective(**result.objective).describe()}.")
    if result.energy_estimated:
        lines.append(f"Energy source: {md.code(result.energy_source)} — an estimate from CPU time, not a "
                     "measurement; compare configs measured on the same machine.")
    else:
        lines.append(f"Energy source: {md.code(result.energy_source)} (measured).")
    return "\n".join(lines) + "\n"


def _metric_cell(cfg: dict[str, Any]) -> str:
    if cfg["metric"] is None:
        return f"failed ({md.text(str(cfg.get('error') or '')[:80])})"
    ci = cfg.get("ci")
    return f"{cfg['metric']:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _params(n: int | None) -> str:
    from rightsize.tables import human_count

    return human_count(n)


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def write_outputs(result: CheckResult, *, junit: Path | None = None, markdown: Path | None = None,
                  step_summary: str | None = None) -> list[Path]:
    """Write the JUnit and Markdown files asked for; append the Markdown to ``step_summary`` if given."""
    written = []
    for path, text in ((junit, to_junit(result) if junit else ""), (markdown, to_markdown(result) if markdown else "")):
        if path is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise RightsizeError(f"cannot write {path}: {exc.strerror or exc}") from None
        written.append(path)
    if step_summary:
        try:
            with open(step_summary, "a", encoding="utf-8") as f:
                f.write(to_markdown(result) + "\n")
        except OSError as exc:
            raise RightsizeError(f"GITHUB_STEP_SUMMARY={step_summary}: cannot append ({exc.strerror or exc})") from None
        written.append(Path(step_summary))
    return written
