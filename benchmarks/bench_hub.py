"""Push and pull of a 1 GB bundle through the registry server, against copying the same files on disk.

The server runs in its own process on 127.0.0.1 (``subspace-hub registry serve``); the client is huggingface_hub
through ``subspace_hub.hub.push_folder`` (LFS uploads for the large files) and ``snapshot_download``. Each
figure is the best of ``--repeat`` runs, into fresh repos and caches.

    PYTHONPATH=. python benchmarks/bench_hub.py --size-mb 1024 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from _report import finish, header  # benchmarks/_report.py: the script's folder is on sys.path


def make_bundle(folder: Path, size_mb: int) -> None:
    """A bundle-shaped folder: four safetensors-sized binary files, the configs, a README."""
    folder.mkdir(parents=True)
    part = size_mb // 4
    for i in range(4):
        with open(folder / f"subspaces-{i:05d}-of-00004.safetensors", "wb") as f:
            for _ in range(part):
                f.write(os.urandom(1 << 20))
    (folder / "subspace_config.json").write_text(json.dumps({"format_version": 1}))
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# bench\n")


def start_server(root: Path, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "subspace_hub",
            "registry",
            "serve",
            "--root",
            str(root),
            "--port",
            str(port),
            "--log-file",
            str(log),
        ]
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            urllib.request.urlopen(f"{url}/api/models/a/b")
        except urllib.error.HTTPError:
            return server, url
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the registry did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    try:
        bundle = work / "bundle"
        make_bundle(bundle, args.size_mb)
        from huggingface_hub import snapshot_download

        from subspace_hub.hub import push_folder
        from subspace_hub.hub.server.auth import TokenBook

        results: dict[str, list[float]] = {"copy": [], "push": [], "repush": [], "pull": []}
        for i in range(args.repeat):
            target = work / f"copy-{i}"
            start = time.perf_counter()
            shutil.copytree(bundle, target)
            os.sync()
            results["copy"].append(time.perf_counter() - start)
            shutil.rmtree(target)
            # a fresh registry per round: the store is content-addressed, so a second push of the same bytes
            # uploads nothing (timed separately as "repush")
            root = work / f"registry-{i}"
            token = TokenBook.load(root).add("bench", write=("bench",))
            server, url = start_server(root, work / f"log-{i}")
            os.environ.update(SUBSPACE_HUB_ENDPOINT=url, SUBSPACE_HUB_TOKEN=token)
            try:
                start = time.perf_counter()
                push_folder(bundle, "bench/bundle", tag="v1")
                os.sync()
                results["push"].append(time.perf_counter() - start)
                start = time.perf_counter()
                push_folder(bundle, "bench/again", tag="v1")
                results["repush"].append(time.perf_counter() - start)
                start = time.perf_counter()
                snapshot_download(
                    "bench/bundle", revision="v1", endpoint=url, token=token, cache_dir=work / f"cache-{i}"
                )
                os.sync()
                results["pull"].append(time.perf_counter() - start)
            finally:
                server.terminate()
                server.wait()
            shutil.rmtree(work / f"cache-{i}")
            shutil.rmtree(root)
        size = sum(f.stat().st_size for f in bundle.iterdir())
        report = {
            **header("cpu"),
            "bytes": size,
            **{f"{k}_s": min(v) for k, v in results.items()},
            **{f"{k}_mb_per_s": size / 2**20 / min(v) for k, v in results.items()},
        }
        finish(report, args.json)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
