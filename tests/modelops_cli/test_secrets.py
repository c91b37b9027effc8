"""Secret config stays secret in every input, output, plan, render, comment and message (issue #26, class 4).

How the real CLI hands secrets to a program: it decrypts a `secure:` value wherever it sits in an object and
marks the whole key secret (`pulumi config set --path --secret`, https://www.pulumi.com/docs/iac/concepts/
config/#structured-configuration; the language host gets the key in `configSecretKeys` only). So the program
cannot tell which value of `modelops:models` was the secret: it reads the place from the stack file, refuses a
secret where it would be written in clear (args, build args, hostnames, names), and keeps every secret's text
out of messages. Offline, the engine never decrypts: a `secure:` value is a placeholder, and neither the
placeholder nor the ciphertext may appear anywhere.
"""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from components.config import StackConfigError, parse_stack_config
from composition.stack_config import _stack_file_secret_paths
from modelops_cli.cli import main
from modelops_cli.stackfile import SECRET_PLACEHOLDER
from tests.conftest import ROOT, reference_plan, stack_raw

CIPHERTEXT = "v1:bm9uY2UtMTIzNA==:c2stbGl2ZS1ub3QtaW4tY2xlYXI="
PLAINTEXT = "sk-live-not-in-clear"


def stack_file(tmp_path, base: str, name: str, mutate) -> str:
    data = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{base}.yaml").read_text())
    mutate(data["config"])
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def secure() -> dict[str, str]:
    return {"secure": CIPHERTEXT}


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert CIPHERTEXT not in text and SECRET_PLACEHOLDER not in text and PLAINTEXT not in text


@pytest.mark.parametrize(
    "base, where, mutate, expected",
    [
        (
            "dev",
            "models.sentiment.args[0]",
            lambda c: c["modelops:models"]["sentiment"].__setitem__("args", [secure()]),
            "refer to it as $(NAME) in args",
        ),
        (
            "dev",
            "models.sentiment.image.buildArgs.TOKEN",
            lambda c: c["modelops:models"]["sentiment"]["image"].__setitem__("buildArgs", {"TOKEN": secure()}),
            "build arguments stay in the image's history",
        ),
        (
            "prod",
            "cluster.gateway.hostname",
            lambda c: c["modelops:cluster"]["gateway"].__setitem__("hostname", secure()),
            "a hostname is public",
        ),
        (
            "dev",
            "cluster.accountId",
            lambda c: c["modelops:cluster"].__setitem__("accountId", secure()),
            "would be written in clear",
        ),
        ("dev", "environment", lambda c: c.__setitem__("modelops:environment", secure()), "written in clear"),
    ],
    ids=["args", "build-args", "hostname", "invalid-account-id", "whole-key"],
)
def test_a_secret_where_it_would_be_written_in_clear_is_refused_by_path(
    tmp_path, capsys, base, where, mutate, expected
):
    path = stack_file(tmp_path, base, "secretive", mutate)
    out = tmp_path / "plan.json"
    assert main(["plan", "--stack-file", path, "--json", str(out)]) == 2
    captured = capsys.readouterr()
    assert f"modelops:{where}: cannot be a secret: " in captured.err and expected in captured.err
    assert_no_secret(captured.out, captured.err)
    assert not out.exists()


def test_secrets_where_they_stay_secret_never_reach_plan_render_or_comment(tmp_path, capsys):
    def secret_env_and_payload(config):
        model = config["modelops:models"]["chat"]
        model["env"] = {"HF_TOKEN": secure(), "LOG_LEVEL": "info"}
        config["modelops:models"]["sentiment"].setdefault("serverless", {})["samplePayload"] = {"inputs": secure()}

    path = stack_file(tmp_path, "prod", "prod", secret_env_and_payload)
    head = tmp_path / "head.json"
    assert main(["plan", "--stack-file", path, "--json", str(head)]) == 0
    plan_text = head.read_text()
    assert json.loads(plan_text)["config"]["modelops:models"] == "[secret]"
    out = tmp_path / "manifests"
    assert main(["render", "--plan", str(head), "--out", str(out)]) == 0
    rendered = "".join(p.read_text() for p in out.rglob("*.yaml"))
    assert "HF_TOKEN" in rendered  # the variable is there, by reference to its Secret
    base = tmp_path / "base.json"
    base.write_text(json.dumps(reference_plan("prod")))
    policies = str(ROOT / "policies" / "config" / "prod.json")
    main(
        ["comment", "--stack", "prod", "--base-plan", str(base), "--head-plan", str(head), "--policy-config", policies]
    )
    main(["diff", str(base), str(head)])
    main(["check", "--plan", str(head), "--policy-config", policies, "--format", "sarif"])
    captured = capsys.readouterr()
    assert_no_secret(plan_text, rendered, captured.out, captured.err)


# ---- under the real engine: the decrypted text is in the config, the place comes from the stack file ----


def test_messages_never_quote_a_decrypted_secret_at_a_known_place():
    raw = stack_raw("dev")
    raw["cluster"]["ingressCidrs"] = [PLAINTEXT]
    raw["models"]["sentiment"]["args"] = [PLAINTEXT]
    with pytest.raises(StackConfigError) as refused:
        parse_stack_config(raw, secret_paths=[("cluster", "ingressCidrs", 0), ("models", "sentiment", "args", 0)])
    assert any("modelops:models.sentiment.args[0]: cannot be a secret" in p for p in refused.value.problems)
    assert PLAINTEXT not in "\n".join(refused.value.problems)


def test_without_the_stack_file_every_text_of_a_secret_key_is_kept_out_of_messages():
    """An ESC environment or a missing file: the key is secret, the place unknown; validators quote values."""
    raw = stack_raw("dev")
    raw["cluster"]["ingressCidrs"] = [PLAINTEXT]
    with pytest.raises(StackConfigError) as without_secrets:
        parse_stack_config(raw)
    assert PLAINTEXT in "\n".join(without_secrets.value.problems)  # the validator quotes it: the case
    with pytest.raises(StackConfigError) as refused:
        parse_stack_config(raw, secret_paths=None, secret_keys=frozenset({"cluster"}))
    problems = "\n".join(refused.value.problems)
    assert "modelops:cluster.ingressCidrs" in problems and PLAINTEXT not in problems


SECRET_TEXT = st.text(alphabet=st.characters(codec="utf-8", categories=["L", "N", "P", "S"]), min_size=4).map(
    lambda t: "S3CR3T" + t
)


@given(SECRET_TEXT, st.sampled_from(["accountId", "name", "region", "kubernetesVersion", "discoveryTag"]))
@settings(max_examples=60, deadline=None)
def test_no_invalid_secret_value_is_ever_quoted(text, field):
    raw = stack_raw("dev")
    raw["cluster"][field] = text
    where: list[tuple[str | int, ...]] = [("cluster", field)]
    for paths, keys in ((where, frozenset({"cluster"})), (None, frozenset({"cluster"}))):
        try:
            parse_stack_config(raw, secret_paths=paths, secret_keys=keys)
        except StackConfigError as exc:
            assert text not in "\n".join(exc.problems)


def test_the_program_reads_where_the_secrets_are_from_the_stack_file_the_cli_read(tmp_path, monkeypatch):
    (tmp_path / "Pulumi.yaml").write_text("name: modelops\nruntime: python\nstackConfigDir: stacks\n")
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.x.yaml").write_text(
        yaml.safe_dump(
            {
                "config": {
                    "modelops:models": {"m": {"args": ["--a", secure()], "env": {"K": secure()}}},
                    "modelops:cluster": {"name": secure()},
                    "aws:region": secure(),
                }
            }
        )
    )
    monkeypatch.chdir(tmp_path)
    # only the keys the engine marks secret: a file that disagrees with the running config is not trusted
    assert _stack_file_secret_paths("x", frozenset({"models"})) == [
        ("models", "m", "args", 1),
        ("models", "m", "env", "K"),
    ]
    assert _stack_file_secret_paths("missing", frozenset({"models"})) is None
