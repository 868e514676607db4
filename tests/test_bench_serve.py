"""`listenloop bench serve`: a real server on loopback under a tiny load, both phases reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from listenloop.bench.serve import clips_zip
from listenloop.demo import DEMO_DIR
from listenloop.errors import ListenloopError


def bench(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "listenloop",
            "bench",
            "serve",
            "--annotators",
            "3",
            "--seconds",
            "2",
            "--think",
            "0.2,0",
            "--json",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_bench_serve_runs_both_phases(tmp_path: Path) -> None:
    proc = bench(tmp_path / "serve.json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((tmp_path / "serve.json").read_text())
    assert [r["think_s"] for r in rows] == [0.2, 0.0]
    for r in rows:
        assert r["annotators"] == 3 and r["acked"] > 0 and r["answers_per_s"] > 0
        assert r["server_errors"] == 0 and r["failures"] == 0 and r["stored_once"] is True
        assert r["serving_cpu_ms"] > 0.1 and r["background_cpu_ms"] >= 0  # the server's CPU per answer
        assert 0 < r["client_cpu_ms"] < 2.5  # the light client: ~0.1-1 ms (httpx took 4.4 ms per request)
    assert "answers/s" in proc.stdout and "ms serving" in proc.stdout


def test_bench_serve_yardstick_is_the_same_load_on_a_server_doing_no_work(tmp_path: Path) -> None:
    proc = bench(tmp_path / "yard.json", "--yardstick")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((tmp_path / "yard.json").read_text())
    assert [r["think_s"] for r in rows] == [0.2, 0.0] and "yardstick" in proc.stderr
    for r in rows:
        assert r["acked"] > 0 and r["stored_once"] is True and r["server_errors"] == 0


def test_bad_think_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "listenloop", "bench", "serve", "--think", "soon"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--think" in proc.stderr and "Traceback" not in proc.stderr


def test_demo_clips_zip_has_every_clip() -> None:
    blob, classes = clips_zip(DEMO_DIR / "recordings", limit=20)
    assert classes == [str(d) for d in range(10)] and blob[:2] == b"PK"


def test_clips_zip_takes_a_dataset_folder(tmp_path: Path) -> None:
    """A labels.csv folder (what `bench campaign` takes) gives the files it lists, by their path."""
    import io
    import shutil
    import zipfile

    recordings = sorted((DEMO_DIR / "recordings").iterdir())[:3]
    (tmp_path / "a").mkdir()
    for wav in recordings:
        shutil.copy(wav, tmp_path / "a" / wav.name)
    rows = "".join(f"a/{wav.name},{wav.name[0]}\n" for wav in recordings)
    (tmp_path / "labels.csv").write_text("file,label\n" + rows)
    blob, _ = clips_zip(tmp_path)
    assert zipfile.ZipFile(io.BytesIO(blob)).namelist() == [f"a/{wav.name}" for wav in recordings]
    (tmp_path / "labels.csv").write_text("file,label\n" + rows + "a/gone.wav,1\n")
    with pytest.raises(ListenloopError, match=r"1 listed files missing, e\.g\. a/gone\.wav"):
        clips_zip(tmp_path)


def test_request_path_bench_times_pairs_in_process(tmp_path: Path) -> None:
    prof = tmp_path / "pairs.prof"
    proc = subprocess.run(
        [sys.executable, "-m", "listenloop.bench.request_path", "--pairs", "20", "--profile", str(prof)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["pairs"] == 20 and 0 < result["cpu_ms_per_pair"] < 1000
    assert prof.stat().st_size > 0


def test_the_load_client_reads_sized_and_chunked_bodies_on_one_connection() -> None:
    """`bench serve`'s client (bench/load_client.py): keep-alive HTTP/1.1, both body framings."""
    import asyncio

    from listenloop.bench.load_client import Conn

    replies = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ]
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for reply in replies:  # one connection for every request: keep-alive
            head = await reader.readuntil(b"\r\n\r\n")
            seen.append(head)
            size = [
                int(x.split(b":")[1]) for x in head.split(b"\r\n") if x.lower().startswith(b"content-length")
            ]
            if size:
                seen.append(await reader.readexactly(size[0]))
            writer.write(reply)
            await writer.drain()
        writer.close()

    async def main() -> list[tuple[int, bytes]]:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = Conn(f"http://127.0.0.1:{port}", "tok")
        out = [await conn.request("GET", "/a"), await conn.request("POST", "/b", b'{"x":1}')]
        out.append(await conn.request("GET", "/c"))
        conn.close()
        server.close()
        return out

    assert asyncio.run(main()) == [(200, b"hello"), (201, b"abcde"), (204, b"")]
    assert seen[0].startswith(b"GET /a HTTP/1.1\r\n") and b"Authorization: Bearer tok\r\n" in seen[0]
    assert b"Content-Length: 7" in seen[1] and seen[2] == b'{"x":1}'


def test_the_load_client_notes_when_the_project_ran_dry() -> None:
    """A project holds answers for so many pairs: `annotate` notes when `next` first found nothing
    (204) and the answers acknowledged by then, so a fast server's rate is not diluted by the
    idle rest of the phase."""
    import asyncio

    from listenloop.bench.load_client import annotate

    work = {"left": 5}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            size = [
                int(x.split(b":")[1]) for x in head.split(b"\r\n") if x.lower().startswith(b"content-length")
            ]
            if size:
                await reader.readexactly(size[0])
            if head.startswith(b"GET") and work["left"] > 0:
                work["left"] -= 1
                body = b'{"task_id": %d}' % work["left"]
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            elif head.startswith(b"GET"):
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()
        writer.close()

    async def main() -> object:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        result = await annotate(f"http://127.0.0.1:{port}", 1, ["tok"], ["a"], seconds=0.5)
        server.close()
        return result

    result = asyncio.run(main())
    assert len(result.acked) == 5 and result.acked_before_dry == 5
    assert result.ran_dry_s is not None and 0 < result.ran_dry_s < 0.5
    figures = result.summary()
    assert figures["answers_per_s_with_work"] == round(5 / result.ran_dry_s, 1)
    assert figures["answers_per_s_with_work"] > figures["answers_per_s"]  # the idle rest no longer counts
