"""modelops: build a stack's GPU pools, model images, serving deployments and serverless fallbacks.

Composition only: the config is read and validated once (components/config.py), components do the
work, and the stack exports each model's endpoint, image and version.
"""

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker
import pulumi_kubernetes as k8s

from components import (
    GpuNodePool,
    GpuNodePoolArgs,
    ImageBuildArgs,
    ModelImage,
    ModelImageArgs,
    ModelService,
    ModelServiceArgs,
    ServerlessFallback,
    ServerlessFallbackArgs,
    preflight,
)
from components.common import aws_tags, standard_labels
from components.config import ImageConfig, StackConfig, StackConfigError, load_stack_config, models_hold_secrets
from components.images import DIGEST_MARK, build_fingerprint
from components.placement import place
from components.serverless_fallback import function_name_for

try:
    cfg: StackConfig = load_stack_config()
except StackConfigError as exc:
    # Before any resource: a broken stack registers nothing.
    raise pulumi.RunError("invalid stack config:\n" + str(exc)) from None

stack = pulumi.get_stack()
env_is_secret = models_hold_secrets()
env = cfg.environment
cluster = cfg.cluster
tags = aws_tags(env, cfg.cost_owner, **{"modelops/stack": stack})

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
            environment=env,
            cost_owner=cfg.cost_owner,
            cluster_name=cluster.name,
            node_role=cluster.node_role,
            discovery_tag=cluster.discovery_tag or cluster.name,
            gpu_limit=pool.gpu_limit,
            instance_families=pool.instance_families,
            instance_types=pool.instance_types,
            capacity_types=cfg.capacity_types(pool),
            architecture=pool.architecture,
            ami_family=pool.ami_family,
            ami_version=pool.ami_version,
            consolidation_policy=pool.consolidation_policy,
            consolidate_after=pool.consolidate_after,
            disruption_budget=pool.disruption_budget,
            expire_after=pool.expire_after,
            weight=pool.weight,
            root_volume_gib=pool.root_volume_gib,
            data_volume_gib=pool.data_volume_gib,
            time_slicing_replicas=pool.time_slicing_replicas,
            monitoring_namespace=cluster.monitoring_namespace,
            prometheus_labels=cluster.prometheus_labels,
            tags=tags,
        ),
        opts=providers,
    )
    for name, pool in cfg.gpu_pools.items()
}


def image_build(image: ImageConfig, version: str) -> ImageBuildArgs:
    return ImageBuildArgs(
        version=version,
        context=image.context,
        dockerfile=image.dockerfile,
        platform=image.platform,
        build_args=image.build_args,
        target=image.target,
        ref=image.ref,
        fingerprint=build_fingerprint(image.context, image.dockerfile, image.build_args, image.platform, image.target)
        if image.context
        else None,
    )


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
                **standard_labels(namespace, env, cfg.cost_owner, component="namespace"),
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
            repository_name=f"{cfg.registry.repository_prefix}/{name}",
            image=image_build(model.image, model.version),
            canary_image=(
                image_build(canary.image or model.image, canary.version) if canary and placement.kubernetes else None
            ),
            cpu_image=image_build(model.cpu_image, model.version) if model.cpu_image and placement.serverless else None,
            images_to_keep=cfg.registry.images_to_keep,
            protect=cfg.defaults.protect,
            tags=tags,
            build_on_preview=cfg.registry.build_on_preview,
            registry_username=ecr_token.user_name,
            registry_password=ecr_token.password,
        ),
        opts=image_providers,
    )
    exported = {"version": model.version, "image": image.image_ref, "placement": placement.reason}

    if placement.kubernetes:
        pool = pools.get(model.pool) if model.pool else None
        gateway = cluster.gateway
        service = ModelService(
            name,
            ModelServiceArgs(
                environment=env,
                cost_owner=cfg.cost_owner,
                namespace=model.namespace,
                version=model.version,
                image=image.image_ref,
                port=model.port,
                gpus=model.gpus,
                node_selector=pool.node_selector if pool else None,
                tolerations=pool.tolerations if pool else None,
                min_replicas=cfg.min_replicas(model),
                max_replicas=cfg.max_replicas(model),
                cpu=model.resources.cpu,
                memory=model.resources.memory,
                shm=model.resources.shm,
                scratch=model.resources.scratch,
                artifact_bucket=model.artifact_bucket,
                artifact_prefix=model.artifact_prefix,
                oidc_provider_arn=cluster.oidc_provider_arn,
                # traffic arrives from the gateway's proxies, which run in the ingress namespace: common
                # implementations do not run them beside the Gateway resource
                ingress_namespace=cluster.ingress_namespace,
                ingress_cidrs=cluster.ingress_cidrs,
                monitoring_namespace=cluster.monitoring_namespace,
                prometheus_labels=cluster.prometheus_labels,
                ready_path=model.probes.ready_path,
                live_path=model.probes.live_path,
                startup_seconds=model.probes.startup_seconds,
                target_cpu_utilization=model.autoscaling.target_cpu_utilization,
                prometheus_query=model.autoscaling.prometheus_query,
                prometheus_threshold=model.autoscaling.prometheus_threshold,
                prometheus_address=model.autoscaling.prometheus_address,
                env=model.env,
                env_is_secret=env_is_secret,
                canary_version=canary.version if canary else None,
                canary_image=image.canary_image_ref if canary else None,
                canary_weight=canary.weight if canary else 0,
                canary_artifact_prefix=model.canary_artifact_prefix,
                gateway_name=gateway.name if gateway else None,
                gateway_namespace=gateway.namespace if gateway else None,
                gateway_hostname=gateway.hostname if gateway else None,
                tags=tags,
            ),
            opts=pulumi.ResourceOptions(
                providers=[aws_provider, k8s_provider], depends_on=[namespaces[model.namespace]]
            ),
        )
        exported["endpoint"] = service.endpoint
        if canary:
            exported["canary"] = {"version": canary.version, "weight": canary.weight, "image": image.canary_image_ref}

    if placement.serverless:
        fallback = ServerlessFallback(
            f"{name}-fallback",
            ServerlessFallbackArgs(
                function_name=function_name_for(stack, name),
                image_uri=image.cpu_image_ref,
                version=model.version,
                region=cluster.region,
                account_id=cluster.account_id,
                memory_mb=model.serverless.memory_mb,
                timeout_seconds=model.serverless.timeout_seconds,
                ephemeral_storage_mb=model.serverless.ephemeral_storage_mb,
                reserved_concurrency=model.serverless.reserved_concurrency,
                architecture="arm64" if (model.cpu_image or model.image).platform == "linux/arm64" else "x86_64",
                artifact_bucket=model.artifact_bucket,
                artifact_prefix=model.artifact_prefix,
                log_retention_days=cfg.defaults.log_retention_days,
                environment=model.env,
                environment_is_secret=env_is_secret,
                tags=tags,
                alarm_topic_arn=cluster.alarm_topic_arn,
            ),
            opts=providers,
        )
        exported["fallback"] = {"function": fallback.function_name, "alias": fallback.alias_name, "url": fallback.url}
        exported.setdefault("endpoint", fallback.url)
    exports[name] = exported

pulumi.export("environment", env)
pulumi.export("models", exports)
pulumi.export(
    "gpuPools", {name: {"gpuLimit": pool.gpu_limit, "nodeSelector": pool.node_selector} for name, pool in pools.items()}
)
