"""A real MLflow tracking server on 127.0.0.1 for the registry tests: a SQLite store, artifacts in S3 on its own
moto server (the layout the README asks of a production registry: `--default-artifact-root s3://…`,
`--no-serve-artifacts`), populated through MLflow's own client as a data scientist's training job would."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.aws_fakes import MotoServer, free_port

BUCKET = "registry-models"


class MlflowServer:
    def __init__(self, s3_url: str | None = None):
        """`s3_url`: an S3 already serving on 127.0.0.1 to keep the artifacts in (the real-engine tier's AWS
        emulator, where the stacks' grants are), left running by stop(); else a moto server of its own."""
        self.moto: MotoServer | None = None
        if s3_url is None:
            self.moto = MotoServer()
            s3_url = self.moto.url
        self.workdir = Path(tempfile.mkdtemp(prefix="modelops-mlflow-"))
        self.env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_S3_ENDPOINT_URL": s3_url,
        }
        import boto3

        boto3.client(
            "s3",
            endpoint_url=s3_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket=BUCKET)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        exe = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
        self._log = (self.workdir / "server.log").open("wb")  # closed in stop()
        self.process = subprocess.Popen(
            [
                exe,
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.workdir}/mlflow.db",
                "--default-artifact-root",
                f"s3://{BUCKET}/mlflow",
                "--no-serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 120  # migrations of a new SQLite store take ~30 s on a loaded machine
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        log = (self.workdir / "server.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"mlflow server did not start:\n{log}")

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.url, registry_uri=self.url)

    @contextlib.contextmanager
    def s3_env(self) -> Iterator[None]:
        """The process environment MLflow's client uploads with (its S3 endpoint and keys), restored after."""
        keys = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        saved = {key: os.environ.get(key) for key in keys}
        os.environ.update({key: self.env[key] for key in keys})
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def register(self, name: str, files: dict[str, bytes], alias: str | None = None) -> tuple[str, str]:
        """Log `files` under a new run's `model/` and register them as a new version of `name` (created when
        absent); returns (version, run_id). The client uploads to S3 itself, as a training job does."""
        client = self.client()
        with self.s3_env():
            experiment = client.get_experiment_by_name(name) or client.get_experiment(client.create_experiment(name))
            run = client.create_run(experiment.experiment_id)
            staging = Path(tempfile.mkdtemp(dir=self.workdir)) / "model"
            staging.mkdir()
            for relative, content in files.items():
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                (staging / relative).write_bytes(content)
            client.log_artifacts(run.info.run_id, str(staging), artifact_path="model")
            client.set_terminated(run.info.run_id)
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name)
        version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
        if alias:
            client.set_registered_model_alias(name, alias, version.version)
        return str(version.version), run.info.run_id

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()
        if self.moto is not None:
            self.moto.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


class HostileRegistry:
    """A tracking server on 127.0.0.1 that answers what a test sets in `answers` (a registry's answers are
    untrusted: another bucket, odd versions, echoed credentials, Retry-After, a drip-fed body); `seen` records
    each request's path and Authorization header."""

    def __init__(self):
        import http.server
        import threading

        self.answers: dict[str, Any] = {}
        self.seen: list[tuple[str, str | None]] = []
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # http.server calls do_<METHOD>
                registry.seen.append((self.path, self.headers.get("Authorization")))
                registry.answer(self)

            do_POST = do_GET

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, handler: Any) -> None:
        a = self.answers
        if "status" in a:
            body = a.get("body", "").replace("{auth}", str(handler.headers.get("Authorization"))).encode()
            handler.send_response(a["status"])
            for name, value in a.get("headers", {}).items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        if "/runs/get" in handler.path:
            payload = {
                "run": {
                    "info": {
                        "run_id": "r1",
                        "experiment_id": "1",
                        "artifact_uri": a.get("run_artifacts", f"s3://{BUCKET}/mlflow/1/r1/artifacts"),
                    },
                    "data": {},
                }
            }
        elif "/logged-models/search" in handler.path:
            payload = {"models": a.get("logged_models", [])}
        else:
            version = {
                "name": "chat",
                "version": a.get("version", "7"),
                "source": a.get("source", f"s3://{BUCKET}/chat/7"),
                "status": "READY",
            }
            if "run_id" in a:
                version["run_id"] = a["run_id"]
            payload = {"model_version": version}
        body = json.dumps(payload).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if a.get("drip"):
            for byte in body:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(a["drip"])
        else:
            handler.wfile.write(body)

    def stop(self) -> None:
        self.server.shutdown()
