"""modelops: build a stack's GPU pools, model images, serving deployments and serverless fallbacks.

Composition only: the config is read (composition/stack_config.py) and validated once (components/config/),
components do the work, and the stack exports each model's endpoint, image and version.
"""

from typing import cast

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker
import pulumi_kubernetes as k8s

from components import (
    GatewayFallback,
    GatewayFallbackArgs,
    GpuNodePool,
    GpuNodePoolArgs,
    ModelImage,
    ModelImageArgs,
    ModelService,
    ModelServiceArgs,
    ServerlessFallback,
    ServerlessFallbackArgs,
)
from components.common import aws_tags, standard_labels
from components.config import StackConfigError, lambda_function_name
from components.images import DIGEST_MARK
from components.serverless_fallback import LIVE_ALIAS
from composition import preflight
from composition.placement import place
from composition.stack_config import load_stack, models_hold_secrets
from composition.weights_lock import provenance_tags, weights_provenance

try:
    cfg, registered, pinned_weights = load_stack()
except StackConfigError as exc:
    # Before any resource: a broken stack registers nothing.
    raise pulumi.RunError("invalid stack config:\n" + str(exc)) from None

stack = pulumi.get_stack()
env_is_secret = models_hold_secrets()
environment = cfg.environment
cluster = cfg.cluster
tags = aws_tags(environment, cfg.cost_owner, **{"modelops/stack": stack})

# Pre-flight: asked for by `auto` models (to choose) and by `preflight.duringUp` (to stop a doomed up).
auto_pools = sorted({m.pool for m in cfg.models.values() if cfg.fallback(m) == "auto" and m.pool})
gate = cfg.preflight.during_up and not pulumi.runtime.is_dry_run()
report = None
if auto_pools or gate:
    if preflight.enabled():
        report = preflight.run_preflight(cfg, pools=None if gate else auto_pools)
    else:
        report = preflight.PreflightReport(
            cluster.region,
            skipped=(
                f"pre-flight could not run: switched off ({preflight.PREFLIGHT_SWITCH}=off, as in offline plans "
                "without --preflight)"
            ),
        )
    if gate and not report.ok:
        raise pulumi.RunError("pre-flight failed (modelops:preflight.duringUp):\n" + preflight.format_report(report))

placements = {name: place(cfg, name, model, report) for name, model in cfg.models.items()}

aws_provider = aws.Provider(
    "aws", region=cluster.region, allowed_account_ids=[cluster.account_id], default_tags={"tags": tags}
)
k8s_provider = None
# A serverless-only stack (dev) never talks to the cluster: no kubeconfig is read, no provider made.
if cfg.gpu_pools or any(p.kubernetes for p in placements.values()):
    if cluster.kubeconfig_stack:
        kubeconfig = pulumi.StackReference(cluster.kubeconfig_stack).require_output(cluster.kubeconfig_output)
    else:
        kubeconfig = pulumi.Config("modelops").require_secret("kubeconfig")
    k8s_provider = k8s.Provider("k8s", kubeconfig=pulumi.Output.secret(kubeconfig), enable_server_side_apply=True)
providers = pulumi.ResourceOptions(providers=[p for p in (aws_provider, k8s_provider) if p is not None])

pools = {
    name: GpuNodePool(
        name,
        GpuNodePoolArgs(
            pool=pool,
            cluster=cluster,
            environment=environment,
            cost_owner=cfg.cost_owner,
            capacity_types=cfg.capacity_types(pool),
            tags=tags,
        ),
        opts=providers,
    )
    for name, pool in cfg.gpu_pools.items()
}


# One ECR token for every image of the deploy, not one per model.
ecr_token = aws.ecr.get_authorization_token_output(
    registry_id=cluster.account_id, opts=pulumi.InvokeOutputOptions(provider=aws_provider)
)
# A pre-built image given by tag is pinned by reading the tag's digest from its registry: the account's
# private ECR answers that only with credentials (401 without). Other registries use the deploying
# machine's Docker credentials.
tag_only_refs = [
    img.ref
    for m in cfg.models.values()
    for img in (m.image, m.cpu_image, m.canary and m.canary.image)
    if img and img.ref and DIGEST_MARK not in img.ref
]
registry_provider = (
    docker.Provider(
        "registry",
        registry_auth=[
            {
                "address": ecr_token.proxy_endpoint.apply(lambda endpoint: endpoint.removeprefix("https://")),
                "username": ecr_token.user_name,
                "password": pulumi.Output.secret(ecr_token.password),
            }
        ],
    )
    if tag_only_refs
    else None
)
image_providers = pulumi.ResourceOptions(
    providers=[p for p in (aws_provider, k8s_provider, registry_provider) if p is not None]
)

namespaces = {}
for namespace in sorted({m.namespace for n, m in cfg.models.items() if placements[n].kubernetes}):
    namespaces[namespace] = k8s.core.v1.Namespace(
        f"ns-{namespace}",
        metadata={
            "name": namespace,
            "labels": {
                **standard_labels(namespace, environment, cfg.cost_owner, component="namespace"),
                # Kubernetes itself refuses pods that break the restricted profile here.
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
        opts=pulumi.ResourceOptions(provider=k8s_provider),
    )

exports = {}
for name, model in cfg.models.items():
    placement = placements[name]
    pulumi.log.info(f"model {name}: {placement.reason}")
    if placement.advice:
        pulumi.log.warn(f"model {name}: {placement.advice}")
    canary = model.canary
    image = ModelImage(
        name,
        ModelImageArgs(
            model=model,
            registry=cfg.registry,
            build_canary=bool(canary) and placement.kubernetes,
            build_cpu_image=bool(model.cpu_image) and placement.serverless,
            protect=cfg.defaults.protect,
            tags=tags,
            registry_username=ecr_token.user_name,
            registry_password=ecr_token.password,
        ),
        opts=image_providers,
    )
    exported = {"version": model.version, "image": image.image_ref, "placement": placement.reason}
    if name in registered:  # which registered version, run and files an alias stood for at this run
        pulumi.log.info(f"model {name}: {registered[name].describe()}")
        exported["registry"] = registered[name].as_output()
    if name in pinned_weights:  # the digest of the files each track's pods check before serving
        exported["weights"] = {track: manifest.digest for track, manifest in pinned_weights[name].items()}

    # the function first: a standby model's route may fail over to it (GatewayFallback)
    fallback = None
    if placement.serverless:
        fallback = ServerlessFallback(
            f"{name}-fallback",
            ServerlessFallbackArgs(
                model=model,
                cluster=cluster,
                function_name=lambda_function_name(stack, name),
                image_uri=image.cpu_image_ref,
                log_retention_days=cfg.defaults.log_retention_days,
                env_is_secret=env_is_secret,
                tags={**tags, **provenance_tags(registered.get(name), pinned_weights.get(name, {}).get("stable"))},
            ),
            opts=providers,
        )

    if placement.kubernetes:
        pool = pools.get(model.pool) if model.pool else None
        assert k8s_provider is not None  # made above whenever a model runs on Kubernetes
        service_args = ModelServiceArgs(
            model=model,
            cluster=cluster,
            environment=environment,
            cost_owner=cfg.cost_owner,
            image=image.image_ref,
            min_replicas=cfg.min_replicas(model),
            max_replicas=cfg.max_replicas(model),
            env_is_secret=env_is_secret,
            tags=tags,
        )
        provenance = weights_provenance(registered.get(name), pinned_weights.get(name, {}))
        if provenance:  # where its weights came from: the registered version, the key that signed them
            service_args["provenance"] = provenance
        if name in pinned_weights:  # checked in the pods before serving
            service_args["weights_manifests"] = {t: dict(m.files) for t, m in pinned_weights[name].items()}
        if canary:
            service_args["canary_image"] = cast(pulumi.Output[str], image.canary_image_ref)  # built: not None
        if pool:
            service_args["node_selector"] = pool.node_selector
            service_args["tolerations"] = pool.tolerations
        k8s_opts = pulumi.ResourceOptions(
            providers=[aws_provider, k8s_provider], depends_on=[namespaces[model.namespace]]
        )
        if fallback is not None and cluster.gateway is not None and cluster.gateway.standby_failover:
            failover = GatewayFallback(
                f"{name}-failover",
                GatewayFallbackArgs(
                    model=model,
                    cluster=cluster,
                    environment=environment,
                    cost_owner=cfg.cost_owner,
                    function_name=lambda_function_name(stack, name),
                    alias=LIVE_ALIAS,
                    function_url=fallback.url,
                    # the relay serves while the model sleeps: the environment's floor, not the model's
                    replicas=cfg.defaults.min_replicas,
                    tags=tags,
                ),
                opts=k8s_opts,
            )
            service_args["fallback_backend"] = failover.backend_name
        service = ModelService(name, service_args, opts=k8s_opts)
        exported["endpoint"] = service.endpoint
        if canary:
            exported["canary"] = {"version": canary.version, "weight": canary.weight, "image": image.canary_image_ref}

    if fallback is not None:
        exported["fallback"] = {"function": fallback.function_name, "alias": fallback.alias_name, "url": fallback.url}
        exported.setdefault("endpoint", fallback.url)
    exports[name] = exported

pulumi.export("environment", environment)
pulumi.export("models", exports)
pulumi.export(
    "gpuPools", {name: {"gpuLimit": pool.gpu_limit, "nodeSelector": pool.node_selector} for name, pool in pools.items()}
)
