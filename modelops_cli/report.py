"""A policy check's report in the forms its readers take: a table for people, JSON for tools, Markdown for
the pull-request comment, SARIF for code scanning (with each rule's control and a stable fingerprint)."""

import hashlib
import json
from typing import Any

from .check import CheckReport
from .inert import md_cell, md_text, terminal


def format_table(report: CheckReport) -> str:
    # every column may hold text from a plan or a policy config (a resource name, a message quoting a value)
    rows = [
        tuple(terminal(v) for v in (f.rule, f.level, f.outcome, f.resource or "(stack)", f.message))
        for f in report.findings
    ]
    order = {"fail": 0, "not-evaluated": 1, "exempt": 2}
    rows.sort(key=lambda r: (order.get(r[2], 3), r[1] != "mandatory", r[0], r[3]))
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(("RULE", "LEVEL", "RESULT", "RESOURCE"))]
    lines = []
    if rows:
        header = ("RULE", "LEVEL", "RESULT", "RESOURCE", "MESSAGE")
        lines.append("  ".join(h.ljust(widths[i]) if i < 4 else h for i, h in enumerate(header)))
        for row in rows:
            lines.append("  ".join(c.ljust(widths[i]) if i < 4 else c for i, c in enumerate(row)))
    s = report.summary()
    lines.append(
        f"{terminal(report.source)}: {s['rules']} rules over {s['resources']} resources: "
        f"{s['mandatoryFailures']} mandatory failure(s), {s['advisoryFailures']} advisory, "
        f"{s['notEvaluated']} not evaluated (unknown at preview), {s['exempt']} exempt"
    )
    return "\n".join(lines)


def format_json(report: CheckReport) -> str:
    return (
        json.dumps(
            {
                "source": report.source,
                "summary": report.summary(),
                "levels": report.levels,
                "findings": [
                    {"rule": f.rule, "level": f.level, "outcome": f.outcome, "urn": f.urn, "message": f.message}
                    for f in report.findings
                ],
            },
            indent=2,
        )
        + "\n"
    )


_WORDS = {"advisory", "mandatory", "remediate", "disabled", "fail", "not-evaluated", "exempt"}
"""Levels and outcomes check produces: shown as they are; anything else (a hand-made report) as inert text."""


def format_markdown(report: CheckReport) -> str:
    s = report.summary()
    verdict = "❌ mandatory policy failures" if s["mandatoryFailures"] else "✅ no mandatory failures"
    lines = [
        f"**Policies**: {verdict} — {s['mandatoryFailures']} mandatory, {s['advisoryFailures']} advisory, "
        f"{s['notEvaluated']} not evaluated, {s['exempt']} exempt ({s['rules']} rules, {s['resources']} resources)"
    ]
    shown = [f for f in report.findings if f.outcome != "exempt"]
    if shown:
        lines += ["", "| rule | level | result | resource | message |", "| --- | --- | --- | --- | --- |"]
        order = {"fail": 0, "not-evaluated": 1}
        for f in sorted(shown, key=lambda f: (order.get(f.outcome, 2), f.level != "mandatory", f.rule, f.resource)):
            level, outcome = (v if v in _WORDS else md_text(v) for v in (f.level, f.outcome))
            cells = (md_cell(f.rule), level, outcome, md_cell(f.resource or "(stack)"))
            lines.append(f"| {' | '.join(cells)} | {md_text(f.message)} |")
    return "\n".join(lines) + "\n"


def format_sarif(report: CheckReport, artifact: str) -> str:
    rule_ids = sorted(report.levels)
    sarif_level = {"mandatory": "error", "remediate": "error", "advisory": "warning", "disabled": "none"}
    results = []
    for f in report.findings:
        result: dict[str, Any] = {
            "ruleId": f.rule,
            "ruleIndex": rule_ids.index(f.rule),
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {"artifactLocation": {"uri": artifact}},
                    **({"logicalLocations": [{"fullyQualifiedName": f.urn, "kind": "resource"}]} if f.urn else {}),
                }
            ],
        }
        if f.outcome == "not-evaluated":
            result.update(kind="review", level="none")
        else:
            result.update(kind="fail", level=sarif_level[f.level])
        # the same finding keeps its fingerprint across runs and message wording (code scanning tracks it)
        result["partialFingerprints"] = {
            "modelopsFinding/v1": hashlib.sha256(f"{f.rule}|{f.urn}|{f.outcome}".encode()).hexdigest()
        }
        if f.outcome == "exempt":
            result["suppressions"] = [{"kind": "external", "justification": f.message.rsplit("(exempt: ", 1)[-1][:-1]}]
        results.append(result)
    run = {
        "tool": {
            "driver": {
                "name": "modelops-check",
                "informationUri": "https://www.pulumi.com/docs/using-pulumi/crossguard/",
                "rules": [
                    {
                        "id": r,
                        "shortDescription": {"text": report.descriptions[r]},
                        **(
                            {"fullDescription": {"text": report.cited[r][0]}, "helpUri": report.cited[r][1]}
                            if r in report.cited
                            else {}
                        ),
                        "defaultConfiguration": {"level": sarif_level[report.levels[r]]},
                    }
                    for r in rule_ids
                ],
            }
        },
        "results": results,
    }
    return (
        json.dumps(
            {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0", "runs": [run]}, indent=2
        )
        + "\n"
    )
