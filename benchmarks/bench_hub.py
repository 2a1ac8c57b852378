"""The registry server under load: push and pull of a 1 GB bundle against copying the same files on disk,
16 parallel clients downloading 1 MB files (requests/s, p50/p99 latency), and the latency of small requests on a
keep-alive connection.

The server runs in its own process on 127.0.0.1 (``subspace-hub registry serve``); the bundle's client is
huggingface_hub through ``subspace_hub.hub.push_folder`` (LFS uploads for the large files) and
``subspace_hub.hub.download`` (what ``subspace-hub pull`` and ``from_pretrained`` run), with a plain
``snapshot_download`` on huggingface_hub's defaults beside it; the parallel and keep-alive clients are plain
``http.client`` connections (one per client thread, kept alive). Each bundle figure is the best of ``--repeat``
runs, into fresh repos and caches. Run it with another checkout first on PYTHONPATH to measure that checkout's
server and client (the "before" of a change).

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

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")  # LFS uploads: the registry offers no Xet

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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def parallel_downloads(url: str, token: str, clients: int, requests: int) -> dict[str, float]:
    """``clients`` threads, each on its own keep-alive connection, GET a 1 MB file ``requests`` times."""
    import http.client
    import threading

    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        mine = []
        for _ in range(requests):
            start = time.perf_counter()
            connection.request(
                "GET", "/bench/files/resolve/main/one-mb.bin", headers={"Authorization": f"Bearer {token}"}
            )
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200 and len(body) == 1 << 20
            mine.append(time.perf_counter() - start)
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return {
        "requests": len(latencies),
        "requests_per_s": len(latencies) / elapsed,
        "mb_per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p99_ms": 1000 * percentile(latencies, 99),
    }


def keepalive_latency(url: str, token: str, requests: int) -> dict[str, float]:
    """One keep-alive connection sending small requests (repo info, a few hundred bytes of JSON) one after another."""
    import http.client

    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    latencies = []
    for _ in range(requests):
        start = time.perf_counter()
        connection.request("GET", "/api/models/bench/files", headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        latencies.append(time.perf_counter() - start)
    connection.close()
    return {
        "requests": requests,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p99_ms": 1000 * percentile(latencies, 99),
    }


def load_figures(url: str, token: str, clients: int, requests: int) -> dict[str, dict[str, float]]:
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(endpoint=url, token=token)
    api.create_repo("bench/files")
    api.create_commit("bench/files", [CommitOperationAdd("one-mb.bin", os.urandom(1 << 20))], commit_message="1 MB")
    keepalive_latency(url, token, 20)  # warm-up
    return {
        "parallel_1mb": parallel_downloads(url, token, clients, requests),
        "keepalive_small": keepalive_latency(url, token, 500),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=64, help="Downloads per parallel client.")
    parser.add_argument("--skip-bundle", action="store_true", help="Only the load figures.")
    parser.add_argument("--json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    try:
        bundle = work / "bundle"
        make_bundle(bundle, 4 if args.skip_bundle else args.size_mb)
        from huggingface_hub import constants, snapshot_download

        from subspace_hub.hub import download, push_folder
        from subspace_hub.hub.server.auth import TokenBook

        results: dict[str, list[float]] = {
            "copy": [],
            "push": [],
            "repush": [],
            "pull": [],
            "pull_snapshot_download": [],
        }
        root = work / "registry-load"
        token = TokenBook.load(root).add("bench", write=("bench",))
        server, url = start_server(root, work / "log-load")
        try:
            load = load_figures(url, token, args.clients, args.requests)
        finally:
            server.terminate()
            server.wait()
        for i in range(0 if args.skip_bundle else args.repeat):
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
                os.environ["SUBSPACE_HUB_HOME"] = str(work / f"home-{i}")  # a fresh download cache
                start = time.perf_counter()
                download("bench/bundle", revision="v1")  # what `subspace-hub pull` and from_pretrained run
                os.sync()
                results["pull"].append(time.perf_counter() - start)
                chunk, constants.DOWNLOAD_CHUNK_SIZE = constants.DOWNLOAD_CHUNK_SIZE, 10 << 20  # its default
                start = time.perf_counter()
                snapshot_download(
                    "bench/bundle", revision="v1", endpoint=url, token=token, cache_dir=work / f"cache-{i}"
                )
                os.sync()
                results["pull_snapshot_download"].append(time.perf_counter() - start)
                constants.DOWNLOAD_CHUNK_SIZE = chunk
            finally:
                server.terminate()
                server.wait()
            shutil.rmtree(work / f"cache-{i}")
            shutil.rmtree(work / f"home-{i}")
            shutil.rmtree(root)
        size = sum(f.stat().st_size for f in bundle.iterdir())
        report = {
            **header("cpu"),
            "bytes": size,
            "download_chunk_bytes": constants.DOWNLOAD_CHUNK_SIZE,  # as subspace_hub's client left it
            **load,
            **{f"{k}_s": min(v) for k, v in results.items() if v},
            **{f"{k}_mb_per_s": size / 2**20 / min(v) for k, v in results.items() if v},
        }
        finish(report, args.json)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
