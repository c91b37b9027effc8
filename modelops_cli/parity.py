"""The README's parity tables: every Pod Security Standards control and every AWS FSBP control of the
services the program uses, with the rule that implements it and its enforcement per environment.

Generated from what each rule of the pack declares it implements (policies/modelops_rules) and the policy
configs, so the table cannot claim a control no rule implements; a test keeps the README's copy current
(`./run modelops parity` prints it).
"""

from __future__ import annotations

from modelops_rules import RULES
from modelops_rules.standards import NOT_APPLICABLE

from .check import POLICIES_DIR, load_policy_config, resolve

ENVIRONMENTS = ("dev", "staging", "prod")
PSS_CONTROLS = {
    "baseline": (
        "HostProcess",
        "Host Namespaces",
        "Privileged Containers",
        "Capabilities",
        "HostPath Volumes",
        "Host Ports",
        "AppArmor",
        "SELinux",
        "/proc Mount Type",
        "Seccomp",
        "Sysctls",
    ),
    "restricted": (
        "Volume Types",
        "Privilege Escalation",
        "Running as Non-root",
        "Running as Non-root user",
        "Seccomp",
        "Capabilities",
    ),
}
"""Every control of the two profiles, as https://kubernetes.io/docs/concepts/security/pod-security-standards/
lists them."""


def _levels() -> dict[str, dict[str, str]]:
    resolved = {env: resolve(load_policy_config(POLICIES_DIR / "config" / f"{env}.json")) for env in ENVIRONMENTS}
    rule_ids = next(iter(resolved.values())).keys()
    return {rule: {env: resolved[env][rule][0] for env in ENVIRONMENTS} for rule in rule_ids}


def _rules_for(standard: str, control: str) -> list[str]:
    return sorted(r.id for r in RULES if any(c.standard == standard and c.control == control for c in r.implements))


def parity_markdown() -> str:
    levels = _levels()

    def enforcement(rules: list[str]) -> str:
        return "<br>".join(" / ".join(levels[r][env] for env in ENVIRONMENTS) for r in rules)

    lines = ["| profile | control | rule | dev / staging / prod |", "| --- | --- | --- | --- |"]
    for profile, controls in PSS_CONTROLS.items():
        for control in controls:
            rules = _rules_for(f"PSS {profile}", control)
            lines.append(
                f"| {profile} | {control} | {', '.join(f'`{r}`' for r in rules) or '**none**'} | "
                f"{enforcement(rules)} |"
            )
    lines += [
        "",
        "AWS Foundational Security Best Practices (FSBP) controls of the services the program uses (ECR, Lambda, IAM,",
        "S3; FSBP has none for CloudWatch Logs), and the Security Hub controls outside FSBP the pack adds:",
        "",
        "| AWS control | rule | dev / staging / prod |",
        "| --- | --- | --- |",
    ]
    aws = {
        (c.standard, c.control): c
        for rule in RULES
        for c in rule.implements
        if c.standard in ("AWS FSBP", "Security Hub")
    }
    aws.update({(c.standard, c.control): c for c, _ in NOT_APPLICABLE})
    reasons = {(c.standard, c.control): why for c, why in NOT_APPLICABLE}

    def order(key: tuple[str, str]) -> tuple[str, int, str]:
        service, number = key[1].split(".")
        return service, int(number), key[0]

    for key in sorted(aws, key=order):
        control = aws[key]
        name = f"[{control.control}]({control.url})" + (" (Security Hub, not FSBP)" if key[0] == "Security Hub" else "")
        if key in reasons:
            lines.append(f"| {name} | not applicable: {reasons[key]} | |")
        else:
            rules = _rules_for(*key)
            lines.append(f"| {name} | {', '.join(f'`{r}`' for r in rules)} | {enforcement(rules)} |")
    return "\n".join(lines) + "\n"
