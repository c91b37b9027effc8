"""Every INPUT surface of modelops, and the hostile classes tried against each (issue #26: "one place in the
tests that lists every input surface (stack keys, CLI flags, files read, HTTP answers) ... with the hostile
classes tried against each; a new feature adds its rows"). tests/test_surfaces.py is the output side.

The inventory is derived from the code, so a new input without a row fails here:
- stack keys: every key path of the published stack schema (modelops_cli/schema.py, from components/config/),
  map keys (model and pool names, env names) included;
- CLI flags: every argparse action of every `modelops` verb (modelops_cli/cli.py, modelops_cli/verbs/);
- files read and answers received: every call that reads a file, parses text from elsewhere or opens a
  connection in offline/, composition/ and components/ (found in their syntax trees).

A row names the inputs it covers and, per hostile class, where the class is tried: a test in this file or
`path::test` elsewhere (a reference to a test that does not exist fails). The classes:

- injection: values that carry ESC/OSC sequences, line breaks, a fake `### ✅` verdict, bidi controls: whatever
  is echoed back (messages, usage errors, reports) stays inert.
- secrets: a `secure:` value, a credential or a token is never shown in clear.
- tracebacks: malformed, huge, deep, non-UTF-8 or wrongly typed values: exit 2 naming the place, never a
  traceback, never unbounded work.
- confinement: paths: symbolic links, `..`, empty, FIFOs and devices, directories.
- credentials: hosts and redirects: a credential goes only to the host it is for.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fnmatch
import io
import json
import os
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelops_cli.cli import build_parser, main
from tests.conftest import ROOT

CLASSES = ("injection", "secrets", "tracebacks", "confinement", "credentials")
HERE = "tests/test_input_surfaces.py"


@dataclass(frozen=True)
class Input:
    name: str
    covers: tuple[str, ...]
    """Globs over the inventory: `stack:<key path>`, `flag:<verb> <option>`, `code:<file>:<function>`."""
    tried: dict[str, str]
    """class -> where it is tried: `path::test` (several separated by `; `)."""
    kind: str = field(default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", self.covers[0].split(":", 1)[0])


def _here(test: str) -> str:
    return f"{HERE}::{test}"


STACK_KEYS_HOSTILE = _here("test_every_stack_key_takes_hostile_values")
FLAGS_HOSTILE = _here("test_every_flag_takes_hostile_values")
READERS_REFUSE = _here("test_what_is_not_a_regular_file_is_refused_unread")
SECRETS_BY_PATH = (
    "tests/modelops_cli/test_secrets.py::test_a_secret_where_it_would_be_written_in_clear_is_refused_by_path"
)
SECRETS_NEVER_QUOTED = "tests/modelops_cli/test_secrets.py::test_no_invalid_secret_value_is_ever_quoted"
KEY_PATHS = "tests/components/test_config.py::test_broken_values_name_their_key_path"

INPUTS = [
    # ---- stack keys, by subject ----
    Input(
        "model names, namespaces, versions, runtimes, placement",
        (
            "stack:modelops:models.<key>",
            "stack:modelops:models.*.namespace",
            "stack:modelops:models.*.version",
            "stack:modelops:models.*.runtime",
            "stack:modelops:models.*.placement",
            "stack:modelops:models.*.pool",
            "stack:modelops:models.*.fallback",
        ),
        {
            "injection": f"{STACK_KEYS_HOSTILE}; tests/test_surfaces.py::test_hostile_values_stay_inert",
            "secrets": f"{SECRETS_BY_PATH}; {SECRETS_NEVER_QUOTED}",
            "tracebacks": f"{STACK_KEYS_HOSTILE}; tests/components/test_config.py::test_model_names_must_be_service_names",
        },
    ),
    Input(
        "images and builds (ref, context, dockerfile, build args, target, platform)",
        (
            "stack:modelops:models.*.image.*",
            "stack:modelops:models.*.cpuImage*",
            "stack:modelops:models.*.canary.image*",
        ),
        {
            "injection": STACK_KEYS_HOSTILE,
            "secrets": SECRETS_BY_PATH,
            "tracebacks": f"{STACK_KEYS_HOSTILE}; {KEY_PATHS}",
            "confinement": _here("test_a_build_context_outside_the_project_is_what_the_stack_names"),
        },
    ),
    Input(
        "environment and arguments",
        ("stack:modelops:models.*.env.*", "stack:modelops:models.*.args"),
        {
            "injection": STACK_KEYS_HOSTILE,
            "secrets": f"{SECRETS_BY_PATH}; "
            "tests/modelops_cli/test_plan.py::test_env_from_secret_config_reaches_pods_and_functions_only_as_secrets",
            "tracebacks": STACK_KEYS_HOSTILE,
        },
    ),
    Input(
        "resources, replicas, ports, probes, serverless limits",
        (
            "stack:modelops:models.*.resources.*",
            "stack:modelops:models.*.gpus",
            "stack:modelops:models.*.replicas.*",
            "stack:modelops:models.*.port",
            "stack:modelops:models.*.probes.*",
            "stack:modelops:models.*.serverless.*",
        ),
        {
            "injection": STACK_KEYS_HOSTILE,
            "secrets": SECRETS_NEVER_QUOTED,
            "tracebacks": f"{STACK_KEYS_HOSTILE}; {KEY_PATHS}; "
            "tests/modelops_cli/test_stackfile_yaml.py::test_any_number_like_scalar_resolves_to_one_json_value_never_a_traceback",
        },
    ),
    Input(
        "autoscaling (PromQL, thresholds, active hours)",
        ("stack:modelops:models.*.autoscaling.*",),
        {
            "injection": STACK_KEYS_HOSTILE,
            "secrets": SECRETS_NEVER_QUOTED,
            "tracebacks": f"{STACK_KEYS_HOSTILE}; tests/components/test_config.py::test_a_query_that_is_not_promql_is_refused; "
            "tests/components/test_config.py::test_active_hours_are_what_kedas_cron_trigger_accepts",
        },
    ),
    Input(
        "artifacts and canaries",
        (
            "stack:modelops:models.*.artifactUri",
            "stack:modelops:models.*.artifactAccess",
            "stack:modelops:models.*.canary",
            "stack:modelops:models.*.canary.artifactUri",
            "stack:modelops:models.*.canary.version",
            "stack:modelops:models.*.canary.weight",
        ),
        {
            "injection": STACK_KEYS_HOSTILE,
            "secrets": SECRETS_NEVER_QUOTED,
            "tracebacks": f"{STACK_KEYS_HOSTILE}; tests/components/test_config.py::test_mounted_artifacts_need_an_artifact",
        },
    ),
    Input(
        "model registry (MLflow tracking server and its answers)",
        ("stack:modelops:mlflow", "stack:modelops:mlflow.*", "code:composition/model_registry.py:__init__"),
        {
            "injection": STACK_KEYS_HOSTILE,
            "secrets": "tests/composition/test_model_registry.py::test_the_token_goes_to_the_registry_and_nowhere_else",
            "tracebacks": "tests/composition/test_model_registry.py::test_an_unreachable_registry_fails_within_bounds_and_plainly; "
            "tests/modelops_cli/test_registry_models.py::test_an_unknown_alias_or_a_registry_that_is_down_registers_nothing",
            "credentials": "tests/composition/test_model_registry.py::test_a_tracking_uri_that_would_leak_the_token_is_refused; "
            "tests/composition/test_model_registry.py::test_the_token_goes_to_the_registry_and_nowhere_else",
        },
    ),
    Input(
        "cluster identity, network and labels",
        ("stack:modelops:cluster.*",),
        {
            "injection": f"{STACK_KEYS_HOSTILE}; tests/test_surfaces.py::test_secrets_never_show",
            "secrets": SECRETS_NEVER_QUOTED,
            "tracebacks": f"{STACK_KEYS_HOSTILE}; {KEY_PATHS}",
        },
    ),
    Input(
        "cluster credentials (kubeconfig secret, stack reference)",
        ("stack:modelops:kubeconfig.secure", "stack:modelops:cluster.kubeconfig*"),
        {
            "injection": STACK_KEYS_HOSTILE,
            "secrets": "tests/modelops_cli/test_plan.py::test_secrets_never_appear_in_clear",
            "tracebacks": "tests/components/test_config.py::test_kubeconfig_must_come_from_a_stack_or_a_secret",
            "credentials": "tests/modelops_cli/test_plan.py::test_the_stack_reference_answers_the_output_the_config_names",
        },
    ),
    Input(
        "GPU pools",
        ("stack:modelops:gpuPools.*",),
        {
            "injection": STACK_KEYS_HOSTILE,
            "secrets": SECRETS_NEVER_QUOTED,
            "tracebacks": f"{STACK_KEYS_HOSTILE}; "
            "tests/components/test_config.py::test_raid0_is_refused_for_instance_types_without_an_instance_store",
        },
    ),
    Input(
        "registry (prefix, allowed registries, retention)",
        ("stack:modelops:registry.*",),
        {
            "injection": STACK_KEYS_HOSTILE,
            "secrets": SECRETS_NEVER_QUOTED,
            "tracebacks": f"{STACK_KEYS_HOSTILE}; "
            "tests/modelops_cli/test_policy_config.py::test_policy_config_never_writes_a_config_the_pack_refuses",
        },
    ),
    Input(
        "image security gate (scan severity, unscanned images)",
        ("stack:modelops:security.*",),
        {"injection": STACK_KEYS_HOSTILE, "secrets": SECRETS_NEVER_QUOTED, "tracebacks": STACK_KEYS_HOSTILE},
    ),
    Input(
        "budget, environment, cost owner, pre-flight switch",
        (
            "stack:modelops:budget.*",
            "stack:modelops:environment",
            "stack:modelops:costOwner",
            "stack:modelops:preflight.*",
        ),
        {
            "injection": STACK_KEYS_HOSTILE,
            "secrets": SECRETS_NEVER_QUOTED,
            "tracebacks": f"{STACK_KEYS_HOSTILE}; tests/components/test_config.py::test_unknown_top_level_key_is_named",
        },
    ),
    # ---- stack files themselves ----
    Input(
        "stack files (YAML as the Pulumi CLI reads it)",
        (
            "code:modelops_cli/stackfile.py:_read_yaml",
            "code:composition/stack_yaml.py:load",
            "code:composition/stack_config.py:_stack_file_secret_paths",
            "code:composition/stack_config.py:_program_value",
            "flag:* --stack-file",
            "flag:* --stack",
        ),
        {
            "injection": "tests/test_surfaces.py::test_hostile_values_stay_inert",
            "secrets": "tests/modelops_cli/test_secrets.py::test_the_program_reads_where_the_secrets_are_from_the_stack_file_the_cli_read",
            "tracebacks": "tests/modelops_cli/test_plan.py::test_non_utf8_and_directory_stack_files_are_exit_2; "
            "tests/modelops_cli/test_plan.py::test_duplicate_keys_are_refused_as_the_cli_refuses_them; "
            "tests/modelops_cli/test_stackfile_yaml.py::test_what_yaml_v3_refuses_is_refused; "
            "tests/modelops_cli/test_plan.py::test_yaml_the_cli_would_not_read_as_config_is_exit_2_naming_file_and_key",
            "confinement": f"{READERS_REFUSE}; tests/modelops_cli/test_comment.py::test_the_marker_and_heading_take_only_a_stack_name",
        },
    ),
    Input(
        "signed weights: the signature a model requires, the trusted keys (project files)",
        (
            "stack:modelops:models.*.signature",
            "stack:modelops:models.*.canary.signature",
            "code:composition/weights_signature.py:read_signing_keys",
            "code:composition/project_files.py:read_regular_file",
        ),
        {
            "injection": STACK_KEYS_HOSTILE,
            "secrets": SECRETS_NEVER_QUOTED,
            "tracebacks": "tests/composition/test_weights_signature.py::test_unusable_keys_name_their_entry; "
            "tests/modelops_cli/test_signed_weights.py::test_signature_config_errors_name_the_key",
            "confinement": "tests/composition/test_weights_signature.py::test_keys_and_locks_that_are_not_regular_files_are_refused_unread; "
            "tests/modelops_cli/test_signed_weights.py::test_signature_config_errors_name_the_key",
        },
    ),
    Input(
        "weights pinned by content: the lock, S3 objects and signatures, a registered version's manifest tag",
        (
            "flag:weights --*",
            "code:composition/weights_lock.py:*",
            "code:composition/model_registry.py:_tagged_manifest",
            "code:composition/weights_signature.py:parse_bundle",
            "code:composition/weights_signature.py:_signed_manifest",
            "code:modelops_cli/weights.py:*",
        ),
        {
            "injection": FLAGS_HOSTILE,
            "secrets": "tests/modelops_cli/test_weights.py::test_s3_refusals_are_reported_plainly",
            "tracebacks": f"{FLAGS_HOSTILE}; "
            "tests/modelops_cli/test_weights.py::test_a_broken_lock_names_the_entry_and_plans_nothing; "
            "tests/modelops_cli/test_weights.py::test_an_object_name_the_check_cannot_carry_is_refused_when_pinning; "
            "tests/modelops_cli/test_registry_models.py::test_a_registry_tag_that_is_not_a_manifest_names_the_key; "
            "tests/composition/test_weights_signature.py::test_what_is_not_a_signature_is_refused_plainly; "
            "tests/modelops_cli/test_signed_weights.py::test_a_plan_refuses_a_recorded_signature_that_was_edited",
            "confinement": "tests/composition/test_weights_signature.py::test_keys_and_locks_that_are_not_regular_files_are_refused_unread; "
            "tests/modelops_cli/test_weights.py::test_a_lock_that_is_not_a_regular_file_is_refused_unread",
        },
    ),
    # ---- files read ----
    Input(
        "plans (ours and `pulumi preview --json`)",
        (
            "code:modelops_cli/plan.py:load_plan",
            "flag:check --plan",
            "flag:cost --plan",
            "flag:render --plan",
            "flag:diff plans",
            "flag:comment --base-plan",
            "flag:comment --head-plan",
        ),
        {
            "injection": "tests/test_surfaces.py::test_hostile_values_stay_inert",
            "secrets": "tests/test_surfaces.py::test_secrets_never_show",
            "tracebacks": "tests/modelops_cli/test_check.py::test_files_that_are_not_plans_are_usage_errors_never_a_pass; "
            "tests/test_surfaces.py::test_plans_nested_too_deep_are_exit_2; "
            "tests/test_surfaces.py::test_malformed_values_are_exit_2_with_a_message_never_a_traceback",
            "confinement": READERS_REFUSE,
        },
    ),
    Input(
        "policy configs (--policy-pack-config)",
        ("code:modelops_cli/policy_config.py:*", "flag:check --policy-config", "flag:comment --policy-config"),
        {
            "injection": "tests/modelops_cli/test_policy_config.py::test_hand_edited_files_are_exit_2_with_the_place_named",
            "tracebacks": "tests/modelops_cli/test_policy_config.py::test_hand_edited_files_are_exit_2_with_the_place_named; "
            "tests/modelops_cli/test_policy_config.py::test_budgets_that_are_no_number_are_refused; "
            "tests/modelops_cli/test_policy_config.py::test_wrong_types_at_every_level_never_crash_policy_config",
            "confinement": "tests/modelops_cli/test_policy_config.py::test_what_is_not_a_file_is_refused_unread; "
            "tests/test_surfaces.py::test_policy_config_write_never_goes_through_a_symbolic_link",
        },
    ),
    Input(
        "kubeconfigs and the files and plugins they name",
        (
            "code:modelops_cli/kubeconfig.py:*",
            "code:modelops_cli/kubeapi.py:_parse_exec_credential",
            "flag:preflight --kubeconfig",
            "flag:preflight --context",
        ),
        {
            "injection": "tests/modelops_cli/test_kubeconfig.py::test_a_malformed_kubeconfig_is_refused_with_its_key_path",
            "secrets": "tests/modelops_cli/test_kubeconfig.py::test_a_token_the_plugin_returns_must_fit_a_header",
            "tracebacks": "tests/modelops_cli/test_kubeconfig.py::test_a_malformed_kubeconfig_is_refused_with_its_key_path; "
            "tests/modelops_cli/test_kubeconfig.py::test_a_huge_kubeconfig_is_refused_without_reading_it_all; "
            "tests/modelops_cli/test_kubeconfig.py::test_a_plugin_that_hangs_is_stopped_at_its_deadline",
            "confinement": f"{READERS_REFUSE}; "
            "tests/modelops_cli/test_kubeconfig.py::test_a_relative_exec_command_is_found_beside_the_kubeconfig",
            "credentials": "tests/modelops_cli/test_kubeapi_hostile.py::test_insecure_skip_tls_verify_is_honoured_only_as_a_bool; "
            "tests/modelops_cli/test_kubeapi_hostile.py::test_client_certificates_authenticate_and_leave_no_key_behind",
        },
    ),
    Input(
        "build contexts (.dockerignore, Dockerfiles, context files hashed into tags)",
        ("code:components/images.py:*",),
        {
            "tracebacks": "tests/components/test_model_image.py::test_up_refuses_a_build_whose_context_is_missing",
            "confinement": "tests/components/test_model_image.py::test_what_dockerignore_leaves_out_does_not_change_the_tag; "
            + _here("test_a_build_context_outside_the_project_is_what_the_stack_names"),
        },
    ),
    Input(
        "the time zone names (tzdata, else the host's zoneinfo)",
        ("code:components/config/autoscaling.py:iana_zones",),
        {"tracebacks": f"{STACK_KEYS_HOSTILE}; tests/components/test_config.py::test_active_hours_that_keda_runs"},
    ),
    Input(
        "the GPU price catalogue (committed data)",
        ("code:components/gpu_catalogue.py:*",),
        {
            "tracebacks": "tests/components/test_config.py::test_gpu_pools_need_a_priced_region_but_serverless_stacks_do_not"
        },
    ),
    Input(
        "a base revision's stack file (comment --base, git)",
        ("code:modelops_cli/comment.py:plan_at_revision", "flag:comment --base", "flag:comment --stack"),
        {
            "injection": "tests/modelops_cli/test_comment.py::test_option_like_base_revisions_never_reach_git",
            "tracebacks": "tests/modelops_cli/test_comment.py::test_an_unknown_base_revision_is_a_usage_error",
            "confinement": "tests/modelops_cli/test_comment.py::test_a_base_revision_is_resolved_to_a_commit_before_checkout",
        },
    ),
    Input(
        "the component provider's inputs (Pulumi's gRPC, JSON-encoded)",
        ("code:components/__main__.py:component_provider",),
        {
            "tracebacks": "tests/components/test_serverless_fallback.py::test_a_hosted_call_with_plain_dicts_plans_as_the_python_one",
            "secrets": "tests/modelops_cli/test_secrets.py::test_the_program_reads_where_the_secrets_are_from_the_stack_file_the_cli_read",
        },
    ),
    # ---- HTTP answers ----
    Input(
        "Kubernetes API server answers (preflight --kubeconfig)",
        (
            "code:modelops_cli/kubeapi.py:_request",
            "code:modelops_cli/kubeapi.py:_connection",
            "code:modelops_cli/kubeapi.py:connect",
            "code:modelops_cli/kubeapi.py:_interpret",
            "code:modelops_cli/kubeapi.py:_status_message",
        ),
        {
            "injection": "tests/modelops_cli/test_kubeapi_hostile.py::test_escape_sequences_from_the_server_are_made_inert",
            "tracebacks": "tests/modelops_cli/test_kubeapi_hostile.py::test_an_odd_answer_is_a_clear_cluster_failure; "
            "tests/modelops_cli/test_kubeapi_hostile.py::test_a_server_that_never_finishes_is_cut_off_at_the_deadline",
            "credentials": "tests/modelops_cli/test_kubeapi_hostile.py::test_a_redirect_is_never_followed_and_the_token_never_leaves; "
            "tests/modelops_cli/test_kubeapi_hostile.py::test_tls_server_name_is_the_name_verified",
        },
    ),
    Input(
        "Envoy Gateway's configuration (its ConfigMap's YAML, read by preflight --kubeconfig for the standby failover)",
        ("code:modelops_cli/cluster_preflight.py:_backend_enabled",),
        {
            "injection": "tests/modelops_cli/test_cluster_preflight.py::test_an_envoy_gateway_config_that_cannot_be_read_is_a_warning",
            "tracebacks": "tests/modelops_cli/test_cluster_preflight.py::test_an_envoy_gateway_config_that_cannot_be_read_is_a_warning; "
            "tests/modelops_cli/test_cluster_preflight.py::test_a_configuration_the_credentials_may_not_read_is_a_warning",
        },
    ),
    Input(
        "smoke endpoints through the gateway (smoke --endpoints)",
        ("code:modelops_cli/smoke.py:_request", "flag:smoke --base-url", "flag:smoke --endpoints"),
        {
            "injection": "tests/modelops_cli/test_smoke.py::test_a_gateway_that_redirects_or_answers_a_page_fails_and_prints_nothing_raw",
            "secrets": "tests/modelops_cli/test_smoke.py::test_a_base_url_with_credentials_or_no_http_is_refused_without_echoing_them",
            "tracebacks": "tests/modelops_cli/test_smoke.py::test_a_trickling_answer_is_cut_at_the_stated_timeout",
            "credentials": "tests/modelops_cli/test_smoke.py::test_a_gateway_that_redirects_or_answers_a_page_fails_and_prints_nothing_raw",
        },
    ),
    Input(
        "Lambda answers (smoke of the serverless fallbacks)",
        ("code:modelops_cli/smoke.py:_lambda_clients", "code:modelops_cli/smoke.py:_lambda_answer_problem"),
        {
            "injection": "tests/modelops_cli/test_smoke.py::test_a_function_answering_an_http_error_is_not_ok",
            "secrets": "tests/modelops_cli/test_smoke.py::test_an_unreachable_lambda_endpoint_with_credentials_in_its_url_never_prints_them",
            "tracebacks": "tests/modelops_cli/test_smoke.py::test_an_invoke_is_never_retried_and_waits_at_most_the_function_timeout",
            "credentials": "tests/modelops_cli/test_smoke.py::test_an_unreachable_lambda_endpoint_with_credentials_in_its_url_never_prints_them",
        },
    ),
    Input(
        "AWS answers for pre-flight (EC2 offerings, Service Quotas, Lambda account settings)",
        (
            "code:composition/preflight.py:run_preflight",
            "code:composition/lambda_preflight.py:check_lambda_concurrency",
        ),
        {
            "tracebacks": "tests/composition/test_preflight.py::test_throttling_and_5xx_are_retried; "
            "tests/composition/test_preflight.py::test_retries_are_bounded_and_then_reported; "
            "tests/composition/test_preflight.py::test_timeouts_are_bounded; "
            "tests/composition/test_lambda_preflight.py::test_throttling_is_retried_within_bounds",
            "credentials": "tests/composition/test_preflight.py::test_no_credentials_means_not_run",
            "injection": "tests/composition/test_preflight.py::test_access_denied_names_the_missing_permission",
        },
    ),
    Input(
        "ECR scan findings (gate)",
        ("code:modelops_cli/gate.py:gate_plan", "code:modelops_cli/gate.py:client_for"),
        {
            "injection": "tests/modelops_cli/test_gate.py::test_a_finding_nobody_rated_fails",
            "tracebacks": "tests/modelops_cli/test_gate.py::test_findings_are_read_on_every_page; "
            "tests/modelops_cli/test_gate.py::test_wait_asks_again_until_the_scan_ends_and_never_passes_one_still_running; "
            "tests/modelops_cli/test_gate.py::test_no_other_status_passes",
            "credentials": "tests/modelops_cli/test_gate.py::test_a_stack_that_does_not_require_the_gate_passes_without_asking_aws",
        },
    ),
    # ---- the remaining flags ----
    Input(
        "output paths",
        ("flag:* --out", "flag:* --json"),
        {
            "injection": FLAGS_HOSTILE,
            "tracebacks": f"{FLAGS_HOSTILE}; tests/modelops_cli/test_plan.py::test_an_output_that_cannot_be_written_is_exit_2_not_a_traceback",
            "confinement": "tests/test_surfaces.py::test_a_symbolic_link_at_the_output_is_refused; "
            "tests/test_surfaces.py::test_a_directory_link_planted_in_the_working_directory_is_refused; "
            "tests/modelops_cli/test_render.py::test_an_empty_out_is_refused_not_the_working_directory",
        },
    ),
    Input(
        "choices, switches and numbers",
        (
            "flag:* --format",
            "flag:* --region",
            "flag:* --budget",
            "flag:* --wait",
            "flag:gate --build-targets",
            "flag:plan --preflight",
            "flag:preflight --cluster-only",
            "flag:policy-config --write",
        ),
        {"injection": FLAGS_HOSTILE, "tracebacks": FLAGS_HOSTILE},
    ),
]

REQUIRED = {
    "stack": {"injection", "secrets", "tracebacks"},
    "flag": {"injection", "tracebacks"},
    "code": {"tracebacks"},
}
"""Classes every row of a kind must try (a row may try more)."""

NOT_INPUT = {
    "code:modelops_cli/cli.py:main": "opens /dev/null to write to once the reader of stdout went away",
    "code:composition/project_files.py:read_regular_file": "the shared reader itself (its callers have rows)",
    "code:modelops_cli/common.py:write_atomically": "writes an output (tests/test_surfaces.py)",
    "code:modelops_cli/kubeapi.py:_key_files": "writes the client key material it removes afterwards",
    "code:modelops_cli/gate.py:format_sarif": "parses the SARIF `check` just wrote",
}
"""Calls the syntax-tree scan finds that read nothing from outside."""


# ---- the inventory, from the code ----


def stack_keys() -> set[str]:
    """Every key path of the published stack schema; `<key>` for the names of a map's keys."""
    from modelops_cli.schema import json_schema

    schema = json_schema()
    defs = schema["$defs"]
    found: set[str] = set()

    def walk(node: dict[str, Any], path: str, seen: frozenset[str]) -> None:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                walk(defs[name], path, seen | {name})
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in node.get(key, []):
                walk(sub, path, seen)
        if isinstance(node.get("additionalProperties"), dict):
            found.add(f"{path}.<key>")
            walk(node["additionalProperties"], f"{path}.*", seen)
        for key, sub in node.get("properties", {}).items():
            walk(sub, f"{path}.{key}" if path else key, seen)
        if not node.get("properties") and not isinstance(node.get("additionalProperties"), dict):
            found.add(path)

    walk(schema["properties"]["config"], "", frozenset())
    return {f"stack:{key}" for key in found if key}


def flags() -> set[str]:
    """`flag:<verb> <option>` for every argparse action of every verb (positionals by their dest)."""
    found = set()
    for verb, sub in _verb_parsers().items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            found.add(f"flag:{verb} {action.option_strings[-1] if action.option_strings else action.dest}")
    return found


def _verb_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


READ_CALLS = {"read_bytes", "read_text", "read_regular_file", "_read_bounded", "open", "load", "loads", "safe_load"}
NET_CALLS = {"HTTPConnection", "HTTPSConnection", "urlopen", "create_connection", "request", "client", "RestStore"}
"""`RestStore`: MLflow's REST stores (composition/model_registry.py), the registry's answers."""


def code_reads() -> set[str]:
    """`code:<file>:<function>` for every function that reads a file, parses text or opens a connection."""
    found = set()
    for top in ("modelops_cli", "composition", "components"):
        for path in sorted((ROOT / top).rglob("*.py")):
            for function in ast.walk(ast.parse(path.read_text())):
                if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for node in ast.walk(function):
                    if isinstance(node, ast.Call) and _called(node) in READ_CALLS | NET_CALLS:
                        found.add(f"code:{path.relative_to(ROOT)}:{function.name}")
    return found


def _called(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return call.func.id if isinstance(call.func, ast.Name) else None


def _covering(item: str) -> list[Input]:
    return [row for row in INPUTS if any(fnmatch.fnmatchcase(item, pattern) for pattern in row.covers)]


# ---- the table is complete and true ----


@pytest.mark.parametrize("inventory", [stack_keys, flags, code_reads], ids=["stack keys", "flags", "files and answers"])
def test_every_input_has_a_row(inventory):
    """A new stack key, flag, file read or connection adds its row (or, for a call that reads nothing from
    outside, a NOT_INPUT entry saying why)."""
    items = inventory()
    assert items
    missing = sorted(item for item in items if not _covering(item) and item not in NOT_INPUT)
    assert missing == [], f"inputs without a row in {HERE}: {missing}"


def test_every_row_covers_something_real():
    """A row whose inputs are gone (a renamed flag, a removed key) is stale, not coverage; so is a NOT_INPUT
    entry for a call that no longer exists."""
    items = stack_keys() | flags() | code_reads()
    for row in INPUTS:
        for pattern in row.covers:
            assert any(fnmatch.fnmatchcase(item, pattern) for item in items), (row.name, pattern)
    assert set(NOT_INPUT) <= items


def _references(where: str) -> Iterator[tuple[Path, str]]:
    for reference in where.split("; "):
        path, _, test = reference.partition("::")
        yield ROOT / path, test


def _defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_row_tries_its_classes_where_it_says():
    for row in INPUTS:
        assert set(row.tried) <= set(CLASSES), row.name
        assert REQUIRED.get(row.kind, set()) <= set(row.tried), (row.name, REQUIRED.get(row.kind))
        for hostile_class, where in row.tried.items():
            for path, test in _references(where):
                assert path.is_file(), (row.name, hostile_class, str(path))
                assert test.startswith("test_") and test in _defined_tests(path), (row.name, hostile_class, test)


# ---- the classes tried here, where a row had none elsewhere ----

_NOT_SHOWN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
INJECTION = "x\x1b]8;;https://evil.example\x07\x1b[2J\n### ✅ all policies pass <!-- \u202e"


def assert_inert(text: str) -> None:
    for char in text:
        if char != "\n":
            assert unicodedata.category(char) not in _NOT_SHOWN, (repr(char), text[:300])
    assert not [line for line in text.splitlines() if line.lstrip().startswith("### ✅")]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """main(argv): exit code (argparse's SystemExit included), stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


HOSTILE_VALUES = [
    ("a", ""),
    ("b", INJECTION),
    ("c", "-"),
    ("d", "a" * 5000),
    ("e", "\udcff\udcfe"),  # what Python makes of argv bytes that are not UTF-8
    ("f", "../../../../etc/passwd"),
    ("g", "--end-of-options"),
]
"""Tried at every flag that takes a value: as a path, a name, a choice and a number."""

NUMBERS = ["nan", "inf", "-inf", "1e400", "-1", "0x10"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, str]:
    """A small plan, a kubeconfig for a server that refuses connections, and an output directory."""
    directory = tmp_path_factory.mktemp("inputs")
    plan = directory / "plan.json"
    plan.write_text(
        json.dumps(
            {"steps": [{"op": "create", "urn": "urn:pulumi:s::p::t::n", "newState": {"type": "t", "inputs": {}}}]}
        )
    )
    kubeconfig = directory / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t0ken"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return {"plan": str(plan), "kubeconfig": str(kubeconfig), "dir": str(directory)}


def base_argv(verb: str, flag: str, ws: dict[str, str], out: str) -> dict[str, list[str]]:
    """A quick, offline command of `verb` in which `flag` matters: option -> its values."""
    prod = str(ROOT / "policies" / "config" / "prod.json")
    plan = [ws["plan"]]
    bases: dict[str, dict[str, list[str]]] = {
        "plan": {"--stack": ["dev"], "--json": [out]},
        "schema": {"--out": [out]},
        "check": {"--plan": plan, "--policy-config": [prod], "--out": [out]},
        "diff": {"plans": plan, "--out": [out]},
        "cost": {"--plan": plan, "--out": [out]},
        "comment": {"--stack": ["dev"], "--base-plan": plan, "--head-plan": plan, "--out": [out]},
        "render": {"--plan": plan, "--out": [out]},
        "policy-config": {"--stack": ["dev"]},
        "parity": {"--out": [out]},
        "preflight": {"--stack": ["prod"], "--cluster-only": [], "--kubeconfig": [ws["kubeconfig"]]},
        "smoke": {"--stack": ["prod"], "--endpoints": [], "--base-url": ["http://127.0.0.1:1"]},
        "gate": {"--stack": ["dev"], "--out": [out]},  # dev requires no scan: nothing asks AWS
        "weights": {"--stack": ["dev"], "--model": ["nosuch"]},  # a model dev lacks: refused before S3 is asked
    }
    assert verb in bases, f"a new verb, {verb}: give it a quick offline command here"
    base = dict(bases[verb])
    if flag == "--stack" and "--plan" in base:
        del base["--plan"]  # a plan given, the stack is not read
    return base


def _argv(verb: str, options: dict[str, list[str]]) -> list[str]:
    argv = [verb]
    for option, values in options.items():
        argv += values if option == "plans" else [option, *values]
    return argv


def _value_flags() -> list[Any]:
    params = []
    for verb, sub in _verb_parsers().items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction) or action.nargs == 0:
                continue
            flag = action.option_strings[-1] if action.option_strings else action.dest
            numeric = action.type is not None and action.dest != "stack"  # the CLI's finite-number type
            params.append(pytest.param(verb, flag, numeric, id=f"{verb} {flag}"))
    return params


@pytest.mark.slow
@pytest.mark.parametrize("verb, flag, numeric", _value_flags())
def test_every_flag_takes_hostile_values(verb, flag, numeric, workspace, tmp_path, monkeypatch):
    """Every value-taking flag of every verb, given an escape sequence, an option-like word, a 5,000-character
    value, a name that is not UTF-8, a path out of the tree (and, for numbers, NaN, infinities and 1e400):
    exit 0, 1 or 2; never a traceback; nothing it prints carries a control character or a line a value
    started, argparse's own usage errors included."""
    # relative outputs land here, deep enough that `../../../../etc/passwd` stays inside tmp_path: from tmp_path itself
    # it is the machine's /etc/passwd, which a run as root once overwrote with a pre-flight report
    working = tmp_path / "w" / "x" / "y" / "z" / "v"
    working.mkdir(parents=True)
    monkeypatch.chdir(working)
    values = [v for _, v in HOSTILE_VALUES] + (NUMBERS if numeric else [])
    for value in values:
        options = base_argv(verb, flag, workspace, str(tmp_path / "out"))
        options[flag] = [value]
        code, out, err = run_cli(_argv(verb, options))
        assert code in (0, 1, 2), (verb, flag, value, code)
        assert "Traceback" not in err, (verb, flag, value, err)
        assert_inert(out + err)


def test_usage_errors_quote_nothing_raw():
    """argparse quotes a stray argument as given ("unrecognized arguments: …"): an escape sequence or a line
    break there reached the terminal. Numbers that are no amount (NaN compared false with every budget) and
    stack names that cannot be one are refused as they are parsed, whatever else the command names."""
    for argv in (["check", INJECTION], [INJECTION], ["diff", "a.json", "--format", INJECTION]):
        code, out, err = run_cli(argv)
        assert code == 2 and ("unrecognized" in err or "invalid choice" in err), err
        assert_inert(out + err)
    for number in NUMBERS[:4]:
        code, _, err = run_cli(["cost", "--plan", "x.json", f"--budget={number}"])
        assert code == 2 and "is not a finite number" in err, err
    code, _, err = run_cli(["comment", "--stack", "../prod", "--base-plan", "a", "--head-plan", "b"])
    assert code == 2 and "not a stack name" in err, err


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--plan", "{path}", "--policy-config", str(ROOT / "policies" / "config" / "prod.json")],
        ["diff", "{path}"],
        ["check", "--plan", "{plan}", "--policy-config", "{path}"],
        ["plan", "--stack-file", "{path}"],
        ["preflight", "--stack", "prod", "--cluster-only", "--kubeconfig", "{path}"],
    ],
    ids=["plan", "diff plans", "policy config", "stack file", "kubeconfig"],
)
def test_what_is_not_a_regular_file_is_refused_unread(argv, workspace, tmp_path):
    """A FIFO hung the reader forever and `/dev/zero` (or a link to it, which a checkout can carry) filled
    memory; a directory is not a file either. Each reader (modelops_cli/files.py read_regular_file) refuses them
    before reading, exit 2 naming the file."""
    fifo = tmp_path / "Pulumi.fifo.yaml"
    os.mkfifo(fifo)
    zero = tmp_path / "Pulumi.zero.yaml"
    zero.symlink_to("/dev/zero")
    directory = tmp_path / "Pulumi.dir.yaml"
    directory.mkdir()
    for path in (fifo, zero, directory):
        code, _, err = run_cli([a.format(path=path, plan=workspace["plan"]) for a in argv])
        assert code == 2 and "Traceback" not in err, (path, err)
        assert path.name in err and ("not a regular file" in err or "directory" in err), err


def _set(config: dict[str, Any], key_path: str, value: Any) -> bool:
    """`value` at `key_path` of a stack config (`*`: the first key there; `<key>`: a new key named by `value`,
    holding a copy of the first entry); False where the reference stack has nothing to go through."""
    parts = key_path.removeprefix("stack:").split(".")
    cursor: Any = config
    for index, part in enumerate(parts):
        if not isinstance(cursor, dict):
            return False
        if part == "<key>":
            if not isinstance(value, str) or not value:
                return False
            cursor[value] = json.loads(json.dumps(next(iter(cursor.values()), {})))
            return True
        if part == "*":
            if not cursor:
                return False
            part = next(iter(cursor))
        if index == len(parts) - 1:
            cursor[part] = value
            return True
        cursor = cursor.setdefault(part, {})
    return True


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


STACK_VALUES = [INJECTION, "", "a" * 10_000, -1, 10**30, 1.5, True, None, [INJECTION], {"k": INJECTION}, _deep(60)]


@pytest.mark.slow
def test_every_stack_key_takes_hostile_values(tmp_path):
    """Every key path of the schema, in prod's stack file, set to an escape sequence, an empty or huge string,
    negative, huge and fractional numbers, a bool, null, a list, a map and a deep map: the stack is refused
    with the key path named (exit 2) or accepted, never a traceback, and nothing printed carries the
    escape sequence raw. (Accepted values reach the plan's outputs: tests/test_surfaces.py.)"""
    from modelops_cli.stackfile import load_stack

    reference = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    path = tmp_path / "Pulumi.prod.yaml"
    tried = 0
    for key in sorted(stack_keys()):
        for value in STACK_VALUES:
            data = json.loads(json.dumps(reference))
            if not _set(data["config"], key, value):
                continue
            path.write_text(yaml.safe_dump(data, allow_unicode=True))
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                try:
                    load_stack("prod", stack_file=path)
                except Exception as exc:
                    from components.config import StackConfigError

                    assert isinstance(exc, StackConfigError), (key, repr(value)[:80], repr(exc)[:300])
                    from modelops_cli.inert import terminal

                    assert_inert("\n".join(terminal(p) for p in exc.problems))
                    assert all(p.strip() for p in exc.problems), key
            tried += 1
    assert tried > 500


def test_a_build_context_outside_the_project_is_what_the_stack_names(tmp_path):
    """A build context or Dockerfile path is the stack's own choice (`..` included: a monorepo keeps its models
    beside the infrastructure); it is read by the build and hashed into the tag. What a context cannot do is
    stall or exhaust the preview that hashes it: a FIFO and a `.dockerignore` that is a FIFO are passed over, and a
    link to /dev/zero or back to the context is hashed as the link it is (BuildKit sends links, not what they point
    at), never followed."""
    from components.images import build_fingerprint

    context = tmp_path / "models" / "chat"
    context.mkdir(parents=True)
    (context / "Dockerfile").write_text("FROM scratch\n")
    plain = build_fingerprint(str(context), "Dockerfile", {}, "linux/amd64", None)
    os.mkfifo(context / "pipe")
    os.mkfifo(context / ".dockerignore")
    (context / "zero").symlink_to("/dev/zero")
    (context / "loop").symlink_to(context, target_is_directory=True)
    hostile = build_fingerprint(
        str(tmp_path / "models" / ".." / "models" / "chat"), "Dockerfile", {}, "linux/amd64", None
    )
    # BuildKit sends a link as a link: its text is part of the context (components/images.py), what it points at is
    # never read; the FIFO is not a file the build gets
    assert plain is not None and hostile is not None and hostile != plain
    (context / "zero").unlink()
    (context / "zero").symlink_to("/dev/null")
    assert build_fingerprint(str(context), "Dockerfile", {}, "linux/amd64", None) not in (plain, hostile)
