"""Kubernetes workload rules (Pod Security Standards, Kyverno, Checkov, kube-score, Polaris)."""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any

from .contracts import S3_CSI_DRIVER
from .framework import CLUSTER_SCOPED_KINDS, is_full_digest, object_name, object_namespace, resource_rule, split_image
from .pods import PodSite, describe, is_builtin, pod_sites, qualified_kind, workload_containers
from .standards import K8S_CONFIG, doc, pss
from .values import as_list, as_map, dig, k8s_kind

_SECRET_WORDS = {
    "password",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "token",
    "secret",
    "secrets",
    "credential",
    "credentials",
    "key",
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "authtoken",
    "accesstoken",
    "bearer",
    "auth",
    "creds",
}
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_SECRET_SUFFIXES = tuple(sorted(w for w in _SECRET_WORDS if len(w) >= 5))
"""Secret words long enough to mean a secret at the end of a run-together word (DBPASSWORD, APITOKEN,
GITHUBTOKEN, OPENAIAPIKEY); short ones (key, pass, pwd, auth) only as words of their own, or MONKEY and
PASSAGE would be secrets. A suffix, not a substring: TOKENIZERS_PARALLELISM and MAX_TOTAL_TOKENS are not."""


_TOKEN_OWNERS = {
    "api",
    "access",
    "auth",
    "hf",
    "hugging",
    "face",
    "github",
    "gh",
    "bearer",
    "refresh",
    "session",
    "oauth",
}
"""Words before `tokens` that make it credentials (HF_TOKENS, API_TOKENS): alone, `tokens` counts text
(MAX_TOTAL_TOKENS, vLLM's and TGI's settings)."""


def _singular(word: str, before: str | None) -> str:
    """A plural secret word as its singular (DB_PASSWORDS, API_KEYS, apiKeys); `tokens` only after an owner."""
    stem = word[:-1]
    if not word.endswith("s") or (stem not in _SECRET_WORDS and not stem.endswith(_SECRET_SUFFIXES)):
        return word
    if word == "tokens" and before not in _TOKEN_OWNERS:
        return word
    return stem


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret, in any case, separator or none, singular or
    plural: DB_PASSWORD, hfToken, api-key, OPENAI_APIKEY, aws.secretAccessKey, DBPASSWORD, SECRETKEY, API_KEYS,
    HF_TOKENS, CREDS."""
    found = [w.lower() for w in _WORD.findall(unicodedata.normalize("NFKC", name))]
    words = [_singular(w, found[i - 1] if i else None) for i, w in enumerate(found)]
    return (
        any(w in _SECRET_WORDS for w in words)
        or any(f"{a}{b}" in _SECRET_WORDS for a, b in itertools.pairwise(words))
        or any(w.endswith(_SECRET_SUFFIXES) for w in words)
    )


def _where(container: Mapping[str, Any]) -> str:
    return describe(container)


@resource_rule(
    "k8s-no-privileged", "Containers must not run privileged.", implements=(pss("baseline", "Privileged Containers"),)
)
def k8s_no_privileged(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for c in workload_containers(resource_type, props):
        if dig(c, "securityContext", "privileged") is True:
            yield f"{_where(c)}: securityContext.privileged is true; remove it (privileged containers own the node)"


@resource_rule(
    "k8s-no-host-namespaces",
    "Pods must not share the host's network, PID or IPC namespace, nor bind host ports.",
    implements=(pss("baseline", "Host Namespaces"), pss("baseline", "Host Ports")),
)
def k8s_no_host_namespaces(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for site in pod_sites(resource_type, props):
        spec = site.spec
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(key) is True:
                yield site.where + f"spec.{key} is true; remove it"
        for c in site.containers():
            for port in as_list(c.get("ports")):
                if as_map(port).get("hostPort"):
                    yield (
                        site.where
                        + f"{_where(c)}: ports.hostPort {as_map(port).get('hostPort')} is set; use a Service instead"
                    )


@resource_rule(
    "k8s-no-hostpath",
    "Pods must not mount host paths, except allowlisted (kind, namespace, name, path).",
    settings={
        "allowlist": {
            "type": "array",
            "default": [],
            "items": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string"},
                    "namespace": {"type": "string"},
                    "name": {"type": "string"},
                    "path": {"type": "string"},
                },
            },
            "description": "hostPath volumes allowed for named workloads (e.g. GPU system daemons).",
        }
    },
    implements=(pss("baseline", "HostPath Volumes"),),
)
def k8s_no_hostpath(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    yield from _host_volumes(resource_type, props)
    # The allowlist names one workload of Kubernetes' own kinds (the DCGM DaemonSet): neither a custom resource nor
    # a Pod or CronJob that happens to share its namespace and name is the workload the entry was written for.
    ns, name, kind = object_namespace(props), object_name(props, ""), qualified_kind(resource_type)
    allowed = {
        (as_map(a).get("namespace"), as_map(a).get("name"), as_map(a).get("path"))
        for a in as_list(settings.get("allowlist"))
        if is_builtin(resource_type) and as_map(a).get("kind") == kind
    }
    for site in pod_sites(resource_type, props):
        for volume in as_list(site.spec.get("volumes")):
            path = dig(volume, "hostPath", "path")
            if path is not None and (ns, name, path) not in allowed:
                yield site.where + (
                    f"volume {as_map(volume).get('name')!r}: hostPath {path} is mounted; use an emptyDir or a "
                    "PersistentVolumeClaim, or allowlist (kind, namespace, name, path) in the policy config"
                )


def _host_volumes(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    """A PersistentVolume of the node's own filesystem (`hostPath`, or a `local` volume): any claim that binds
    to it mounts that host path into its pods, through a volume type (persistentVolumeClaim) every profile
    allows (https://kubernetes.io/docs/concepts/storage/volumes/#hostpath, #local)."""
    if qualified_kind(resource_type) != "PersistentVolume":
        return
    spec = as_map(props.get("spec"))
    for source in ("hostPath", "local"):
        path = dig(spec, source, "path")
        if spec.get(source) is not None:
            yield (
                f"spec.{source} {path} makes a volume of the node's filesystem: a pod that claims it mounts that "
                "host path; use a CSI driver or an emptyDir"
            )


@resource_rule(
    "k8s-drop-capabilities",
    "Containers must drop ALL capabilities and add none but NET_BIND_SERVICE.",
    implements=(pss("baseline", "Capabilities"), pss("restricted", "Capabilities")),
)
def k8s_drop_capabilities(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for c in workload_containers(resource_type, props):
        caps = as_map(dig(c, "securityContext", "capabilities"))
        if "ALL" not in list(as_list(caps.get("drop"))):
            yield f"{_where(c)}: securityContext.capabilities.drop lacks ALL; add drop: [ALL]"
        extra = [a for a in as_list(caps.get("add")) if a != "NET_BIND_SERVICE"]
        if extra:
            yield f"{_where(c)}: securityContext.capabilities.add has {extra}; only NET_BIND_SERVICE is allowed"


@resource_rule(
    "k8s-no-privilege-escalation",
    "Containers must set allowPrivilegeEscalation: false.",
    implements=(pss("restricted", "Privilege Escalation"),),
)
def k8s_no_privilege_escalation(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for c in workload_containers(resource_type, props):
        if dig(c, "securityContext", "allowPrivilegeEscalation") is not False:
            yield f"{_where(c)}: securityContext.allowPrivilegeEscalation is not false; set it to false"


@resource_rule(
    "k8s-run-as-non-root",
    "Pods must run as non-root: runAsNonRoot true, and never runAsUser 0.",
    implements=(pss("restricted", "Running as Non-root"), pss("restricted", "Running as Non-root user")),
)
def k8s_run_as_non_root(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for site in pod_sites(resource_type, props):
        spec = site.spec
        pod_ctx = as_map(spec.get("securityContext"))
        if pod_ctx.get("runAsUser") == 0:
            yield site.where + "spec.securityContext.runAsUser is 0 (root); use a non-zero user"
        pod_non_root = pod_ctx.get("runAsNonRoot") is True
        for c in site.containers():
            ctx = as_map(c.get("securityContext"))
            if ctx.get("runAsUser") == 0:
                yield site.where + f"{_where(c)}: securityContext.runAsUser is 0 (root); use a non-zero user"
            if ctx.get("runAsNonRoot") is False or (not pod_non_root and ctx.get("runAsNonRoot") is not True):
                yield site.where + (
                    f"{_where(c)}: runAsNonRoot is not true; set securityContext.runAsNonRoot: true "
                    "on the pod or the container"
                )


@resource_rule(
    "k8s-seccomp",
    "Pods must use the RuntimeDefault or a Localhost seccomp profile.",
    implements=(pss("baseline", "Seccomp"), pss("restricted", "Seccomp")),
)
def k8s_seccomp(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for site in pod_sites(resource_type, props):
        spec = site.spec
        good = ("RuntimeDefault", "Localhost")
        pod_ok = dig(spec, "securityContext", "seccompProfile", "type") in good
        for c in site.containers():
            own = dig(c, "securityContext", "seccompProfile", "type")
            if own is not None and own not in good:
                yield site.where + f"{_where(c)}: seccompProfile.type is {own}; use RuntimeDefault"
            elif own is None and not pod_ok:
                yield (
                    site.where
                    + f"{_where(c)}: no seccompProfile; set spec.securityContext.seccompProfile.type: RuntimeDefault"
                )


# ---- Pod Security Standards controls not covered above (baseline, then restricted) ----
# The edge cases follow the Pod Security admission's own checks (k8s.io/pod-security-admission/policy).


def _security_contexts(site: PodSite) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, securityContext) of the pod and of every container, init and ephemeral ones included."""
    yield "spec.securityContext", as_map(site.spec.get("securityContext"))
    for c in site.containers():
        yield f"{_where(c)} securityContext", as_map(c.get("securityContext"))


@resource_rule(
    "k8s-no-host-process",
    "Pods must not run as Windows HostProcess containers (PSS baseline: HostProcess).",
    implements=(pss("baseline", "HostProcess"),),
)
def k8s_no_host_process(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for site in pod_sites(resource_type, props):
        for where, ctx in _security_contexts(site):
            if dig(ctx, "windowsOptions", "hostProcess") is True:
                yield (
                    site.where
                    + f"{where}.windowsOptions.hostProcess is true; HostProcess containers own the Windows node"
                )


@resource_rule(
    "k8s-apparmor", "AppArmor must not be disabled (PSS baseline: AppArmor).", implements=(pss("baseline", "AppArmor"),)
)
def k8s_apparmor(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for site in pod_sites(resource_type, props):
        for where, ctx in _security_contexts(site):
            kind = dig(ctx, "appArmorProfile", "type")
            if kind is not None and kind not in ("RuntimeDefault", "Localhost"):
                yield site.where + f"{where}.appArmorProfile.type is {kind}; use RuntimeDefault or a Localhost profile"
        for key, value in site.annotations():
            if (
                str(key).startswith("container.apparmor.security.beta.kubernetes.io/")
                and value not in ("runtime/default",)
                and not str(value).startswith("localhost/")
            ):
                yield site.where + f"annotation {key} is {value}; use runtime/default or a localhost/ profile"


# What the baseline profile allows of seLinuxOptions.type; user and role must stay unset.
_SELINUX_TYPES = ("", "container_t", "container_init_t", "container_kvm_t", "container_engine_t")


@resource_rule(
    "k8s-selinux",
    "SELinux options must not set a custom user or role, nor an unsafe type (PSS baseline: SELinux).",
    implements=(pss("baseline", "SELinux"),),
)
def k8s_selinux(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for site in pod_sites(resource_type, props):
        for where, ctx in _security_contexts(site):
            options = as_map(ctx.get("seLinuxOptions"))
            if options.get("type") not in (None, *_SELINUX_TYPES):
                yield (
                    site.where
                    + f"{where}.seLinuxOptions.type is {options.get('type')}; use container_t (or leave it unset)"
                )
            for field in ("user", "role"):
                if options.get(field):
                    yield site.where + f"{where}.seLinuxOptions.{field} is set; leave it unset"


@resource_rule(
    "k8s-proc-mount",
    "Containers must use the default /proc mount (PSS baseline: /proc Mount Type).",
    implements=(pss("baseline", "/proc Mount Type"),),
)
def k8s_proc_mount(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for c in workload_containers(resource_type, props):
        mount = dig(c, "securityContext", "procMount")
        if mount not in (None, "Default"):
            yield f"{_where(c)}: securityContext.procMount is {mount}; leave it Default (an unmasked /proc leaks the host)"


# The sysctls the baseline profile allows (namespaced, and isolated from the node and other pods).
SAFE_SYSCTLS = (
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
)


@resource_rule(
    "k8s-safe-sysctls",
    "Pods may set only the safe sysctls (PSS baseline: Sysctls).",
    implements=(pss("baseline", "Sysctls"),),
)
def k8s_safe_sysctls(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for site in pod_sites(resource_type, props):
        spec = site.spec
        for sysctl in as_list(dig(spec, "securityContext", "sysctls")):
            name = as_map(sysctl).get("name")
            if name not in SAFE_SYSCTLS:
                yield (
                    site.where
                    + f"spec.securityContext.sysctls sets {name}, which is not namespaced and safe; remove it"
                )


# The volume types the restricted profile allows. hostPath is judged by k8s-no-hostpath, with its allowlist.
RESTRICTED_VOLUME_TYPES = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
)


@resource_rule(
    "k8s-volume-types",
    "Pods may use only the restricted profile's volume types (PSS restricted: Volume Types).",
    implements=(pss("restricted", "Volume Types"),),
)
def k8s_volume_types(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for site in pod_sites(resource_type, props):
        spec = site.spec
        for volume in as_list(spec.get("volumes")):
            kinds = [k for k in as_map(volume) if k != "name"]
            bad = [k for k in kinds if k not in RESTRICTED_VOLUME_TYPES and k != "hostPath"]
            if bad:
                yield site.where + (
                    f"volume {as_map(volume).get('name')!r} is {', '.join(bad)}; the restricted profile allows "
                    f"{', '.join(RESTRICTED_VOLUME_TYPES)}"
                )


@resource_rule(
    "k8s-memory-volume-limit",
    "Memory-backed volumes (/dev/shm) must set a sizeLimit.",
    implements=(
        doc(
            "Kubernetes",
            "emptyDir (medium Memory, sizeLimit)",
            "https://kubernetes.io/docs/concepts/storage/volumes/#emptydir",
        ),
    ),
)
def k8s_memory_volume_limit(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for site in pod_sites(resource_type, props):
        spec = site.spec
        for volume in as_list(spec.get("volumes")):
            empty_dir = as_map(as_map(volume).get("emptyDir"))
            if empty_dir.get("medium") == "Memory" and not empty_dir.get("sizeLimit"):
                yield site.where + (
                    f"volume {as_map(volume).get('name')!r} is a memory-backed emptyDir without sizeLimit: it takes RAM "
                    "from the node until the pod's memory limit kills the server; size it (e.g. /dev/shm per GPU)"
                )


@resource_rule(
    "k8s-s3-mount-readonly",
    "S3 volumes (Mountpoint CSI) must be read-only.",
    implements=(
        doc(
            "Mountpoint for Amazon S3 CSI driver",
            "static provisioning, mount options",
            "https://docs.aws.amazon.com/eks/latest/userguide/s3-csi.html",
        ),
    ),
)
def k8s_s3_mount_readonly(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    if k8s_kind(resource_type) not in ("PersistentVolume", "PersistentVolumePatch"):
        return
    spec = as_map(props.get("spec"))
    if as_map(spec.get("csi")).get("driver") != S3_CSI_DRIVER:
        return
    writable = [m for m in as_list(spec.get("accessModes")) if m not in ("ReadOnlyMany",)]
    if writable:
        yield f"accessModes {writable}: a model's S3 prefix is mounted ReadOnlyMany; a pod must not write the weights"
    if "read-only" not in [str(o).strip() for o in as_list(spec.get("mountOptions"))]:
        yield "mountOptions lacks read-only: Mountpoint would accept writes (and deletes) into the model's prefix"


@resource_rule(
    "k8s-readonly-rootfs",
    "Containers must have a read-only root filesystem (caches go to an emptyDir).",
    implements=(
        doc(
            "Kubernetes",
            "security context",
            "https://kubernetes.io/docs/tasks/configure-pod-container/security-context/",
        ),
    ),
)
def k8s_readonly_rootfs(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for c in workload_containers(resource_type, props):
        if dig(c, "securityContext", "readOnlyRootFilesystem") is not True:
            yield (
                f"{_where(c)}: securityContext.readOnlyRootFilesystem is not true; set it and mount an "
                "emptyDir where the server writes"
            )


def _images(resource_type: str, props: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], str]]:
    for c in workload_containers(resource_type, props):
        image = c.get("image")
        if isinstance(image, str):
            yield c, image


@resource_rule(
    "k8s-image-tag",
    "Images must carry a tag other than latest (or a digest).",
    implements=(doc("Kubernetes", "images", "https://kubernetes.io/docs/concepts/containers/images/#image-names"),),
)
def k8s_image_tag(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for c, image in _images(resource_type, props):
        _, tag, digest = split_image(image)
        if digest is None and (tag is None or tag == "latest"):
            yield f"{_where(c)}: image {image} has {'the tag latest' if tag else 'no tag'}; pin a version or a digest"


@resource_rule(
    "k8s-image-digest",
    "Images must be pinned by a full @sha256 digest.",
    implements=(doc("Kubernetes", "images", "https://kubernetes.io/docs/concepts/containers/images/#image-names"),),
)
def k8s_image_digest(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    # The kubelet accepts `repo@sha256:…` and `repo:tag@sha256:…` (the tag is then ignored): both pin.
    for c, image in _images(resource_type, props):
        _, _, digest = split_image(image)
        if not is_full_digest(digest):
            yield f"{_where(c)}: image {image} is not pinned by a full digest; use repo@sha256:<64 hex digits>"


def normalise_image(image: str) -> str:
    """Docker Hub short names in full: `nginx` -> `docker.io/library/nginx`."""
    first = image.split("/", 1)[0]
    if "/" not in image:
        return f"docker.io/library/{image}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{image}"
    return image


@resource_rule(
    "k8s-allowed-registries",
    "Images must come from the stack's registry allowlist.",
    settings={
        "registries": {
            "type": "array",
            "items": {"type": "string"},
            "default": [],
            "description": "Allowed prefixes, each ending with '/'.",
        }
    },
    implements=(doc("Kubernetes", "images", "https://kubernetes.io/docs/concepts/containers/images/"),),
)
def k8s_allowed_registries(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    allowed = [str(r) for r in as_list(settings.get("registries"))]
    for c, image in _images(resource_type, props):
        if not any(normalise_image(image).startswith(prefix) for prefix in allowed):
            yield (
                f"{_where(c)}: image {image} is outside the registry allowlist "
                f"({', '.join(allowed) or 'empty'}); push it to an allowed registry"
            )


@resource_rule(
    "k8s-requests-limits",
    "Containers must request cpu and memory and limit memory.",
    implements=(doc("Kubernetes", "resource management", f"{K8S_CONFIG}manage-resources-containers/"),),
)
def k8s_requests_limits(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for c in workload_containers(resource_type, props):
        resources = as_map(c.get("resources"))
        missing = [
            f"{kind}.{res}"
            for kind, res in (("requests", "cpu"), ("requests", "memory"), ("limits", "memory"))
            if as_map(resources.get(kind)).get(res) in (None, "")
        ]
        if missing:
            yield f"{_where(c)}: resources {', '.join(missing)} missing; set them so the scheduler and OOM killer can plan"


@resource_rule(
    "k8s-probes",
    "Serving containers need a readinessProbe, and every container a liveness or startup probe.",
    implements=(
        doc(
            "Kubernetes",
            "probes",
            "https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/",
        ),
    ),
)
def k8s_probes(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    if k8s_kind(resource_type) in ("Job", "CronJob", "JobPatch", "CronJobPatch"):
        return
    for c in workload_containers(resource_type, props, include_init=False):
        # A container that declares ports is what a Service sends traffic to.
        if as_list(c.get("ports")) and c.get("readinessProbe") is None:
            yield f"{_where(c)}: no readinessProbe; traffic would reach it before it is ready"
        if c.get("livenessProbe") is None and c.get("startupProbe") is None:
            yield f"{_where(c)}: no livenessProbe or startupProbe; a hung process would never restart"


@resource_rule(
    "k8s-namespace",
    "Namespaced objects must name a namespace other than default.",
    implements=(
        doc(
            "Kubernetes", "namespaces", "https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/"
        ),
    ),
)
def k8s_namespace(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    kind = k8s_kind(resource_type)
    if kind is None or qualified_kind(resource_type) in CLUSTER_SCOPED_KINDS:
        return
    ns = dig(props, "metadata", "namespace")
    if ns in (None, "", "default"):
        yield f"metadata.namespace is {ns or 'unset'}; put {kind} in a namespace of its own"


@resource_rule(
    "k8s-sa-token",
    "Pods must not mount a service-account token unless they use the API.",
    implements=(
        doc(
            "Kubernetes",
            "service account tokens",
            "https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/#opt-out-of-api-credential-automounting",
        ),
    ),
)
def k8s_sa_token(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for site in pod_sites(resource_type, props):
        if site.spec.get("automountServiceAccountToken") is not False:
            yield site.where + (
                "spec.automountServiceAccountToken is not false; set it to false (or exempt the workload "
                "in the policy config if it calls the Kubernetes API)"
            )
        yield from (site.where + m for m in _projected_tokens(site))


def _projected_tokens(site: PodSite) -> Iterator[str]:
    """A token mounted through a projected volume's `serviceAccountToken` source is mounted whatever
    automountServiceAccountToken says; without an `audience` it is one for the API server
    (https://kubernetes.io/docs/concepts/storage/projected-volumes/#serviceaccounttoken)."""
    for volume in as_list(site.spec.get("volumes")):
        for source in as_list(dig(volume, "projected", "sources")):
            token = as_map(source).get("serviceAccountToken")
            if token is not None:
                audience = as_map(token).get("audience") or "the API server (no audience)"
                yield (
                    f"volume {as_map(volume).get('name')!r} projects a service-account token for {audience}; remove "
                    "it (or exempt the workload in the policy config if it needs that token)"
                )


@resource_rule(
    "k8s-no-secret-env",
    "Secrets must not be literal env values (pods and Lambda functions).",
    implements=(
        doc(
            "Kubernetes",
            "Secrets good practices",
            "https://kubernetes.io/docs/concepts/security/secrets-good-practices/",
        ),
    ),
)
def k8s_no_secret_env(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    for c in workload_containers(resource_type, props):
        yield from _plain_secret_env(c)
    if qualified_kind(resource_type) == "ConfigMap":
        for field in ("data", "binaryData"):
            for key in as_map(props.get(field)):
                if is_secret_name(str(key)):
                    yield (
                        f"{field} key {key} looks like a secret, and a ConfigMap is stored and shown in plain text "
                        "(a pod's envFrom or configMapKeyRef would hand it over as an env variable); use a Secret"
                    )
    if resource_type == "aws:lambda/function:Function":
        for name in as_map(dig(props, "environment", "variables")):
            if is_secret_name(str(name)):
                yield (
                    f"environment variable {name} is a literal value in the function's configuration (readable "
                    "with lambda:GetFunctionConfiguration); read it from Secrets Manager or SSM at start"
                )


def _plain_secret_env(c: Mapping[str, Any]) -> Iterator[str]:
    """Secret-looking variables a container gets in plain text: a literal `value`, a ConfigMap key
    (`valueFrom.configMapKeyRef`), or a whole ConfigMap through `envFrom` under a secret-looking `prefix`
    (https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#environment-variables)."""
    for env in as_list(c.get("env")):
        env = as_map(env)
        name = str(env.get("name", ""))
        if not is_secret_name(name):
            continue
        if "value" in list(env):
            yield f"{_where(c)}: env {name} is a literal value; read it from a Secret (valueFrom.secretKeyRef)"
        elif dig(env, "valueFrom", "configMapKeyRef") is not None:
            yield f"{_where(c)}: env {name} comes from a ConfigMap, which is plain text; read it from a Secret"
    for source in as_list(c.get("envFrom")):
        source = as_map(source)
        prefix = str(source.get("prefix") or "")
        if source.get("configMapRef") is not None and prefix and is_secret_name(prefix):
            yield (
                f"{_where(c)}: envFrom a ConfigMap with prefix {prefix}: its keys become secret-looking variables "
                "from plain text; use secretRef"
            )


@resource_rule(
    "k8s-service-exposure",
    "Services must not be NodePort, unapproved LoadBalancers or use externalIPs.",
    settings={
        "allowLoadBalancer": {
            "type": "boolean",
            "default": False,
            "description": "Whether LoadBalancer Services are allowed.",
        }
    },
    implements=(
        doc(
            "Kubernetes",
            "Service types",
            "https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types",
        ),
    ),
)
def k8s_service_exposure(resource_type: str, props: Mapping[str, Any], settings: dict) -> Iterator[str]:
    if k8s_kind(resource_type) not in ("Service", "ServicePatch"):
        return
    spec = as_map(props.get("spec"))
    kind = spec.get("type", "ClusterIP")
    if kind == "NodePort":
        yield "spec.type is NodePort; use ClusterIP behind the gateway"
    if kind == "LoadBalancer" and not settings.get("allowLoadBalancer"):
        yield "spec.type is LoadBalancer, which this stack's policy config does not allow; route through the gateway"
    if as_list(spec.get("externalIPs")):
        yield "spec.externalIPs is set; remove it (it can hijack cluster traffic)"
