"""Bounded HTTP load: wrk when it is installed, else an asyncio client; same result shape.

Both keep ``connections`` connections busy with one request path for ``duration``
seconds, then stop. Each counts the answers by status (wrk through a small Lua script),
so a run that measured 401s or 429s instead of the intended answer is visible. The
asyncio client is Python on the same cores as the server: it saturates well below wrk,
so compare ratios only between rows measured by the same generator.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

WRK_SCRIPT = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH-RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"timeout": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.timeout, table.concat(parts, ", ")))
end
"""


@dataclass
class LoadResult:
    requests: int
    seconds: float
    bytes_read: int
    p50_ms: float
    p99_ms: float
    statuses: Counter[int] = field(default_factory=Counter)
    socket_errors: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def unexpected(self, status: int) -> int:
        """Answers with another status than ``status``, plus socket errors and timeouts."""
        wrong = sum(n for s, n in self.statuses.items() if s != status)
        return wrong + sum(self.socket_errors.values())

    def describe_errors(self, status: int) -> str:
        parts = [f"{n}×{s}" for s, n in sorted(self.statuses.items()) if s != status]
        parts += [f"{n} {kind}" for kind, n in sorted(self.socket_errors.items()) if n]
        return ", ".join(parts) or "0"


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def choose(generator: str) -> str:
    if generator == "auto":
        return "wrk" if wrk_available() else "asyncio"
    if generator == "wrk" and not wrk_available():
        raise SystemExit(
            "wrk is not installed (Debian: apt-get install wrk); try --generator asyncio"
        )
    return generator


def run(
    generator: str,
    url: str,
    headers: dict[str, str],
    connections: int,
    duration: float,
    timeout: float,
    threads: int = 2,
) -> LoadResult:
    if generator == "wrk":
        return run_wrk(url, headers, connections, duration, timeout, threads)
    return asyncio.run(run_asyncio(url, headers, connections, duration, timeout))


# --- wrk ----------------------------------------------------------------------------------


def run_wrk(
    url: str,
    headers: dict[str, str],
    connections: int,
    duration: float,
    timeout: float,
    threads: int,
) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="deltaflow-wrk-") as folder:
        script = Path(folder) / "count.lua"
        script.write_text(WRK_SCRIPT)
        command = [
            "wrk", "--threads", str(max(1, min(threads, connections))),
            "--connections", str(connections), "--duration", f"{duration:g}s",
            "--timeout", f"{timeout:g}s", "--script", str(script),
        ]  # fmt: skip
        for name, value in headers.items():
            command += ["--header", f"{name}: {value}"]
        command.append(url)
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=duration + timeout + 60
        )
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH-RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("BENCH-RESULT "))
    return LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        bytes_read=data["bytes"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        statuses=Counter({int(s): n for s, n in data["statuses"].items()}),
        socket_errors=Counter({k: data[k] for k in ("connect", "read", "write", "timeout")}),
    )


# --- asyncio ------------------------------------------------------------------------------


async def run_asyncio(
    url: str, headers: dict[str, str], connections: int, duration: float, timeout: float
) -> LoadResult:
    host_port, _, path = url.split("://", 1)[1].partition("/")
    host, _, port = host_port.partition(":")
    lines = [f"GET /{path} HTTP/1.1", f"Host: {host_port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    read = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration

    async def connection() -> None:
        nonlocal read
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while loop.time() < deadline:
            if writer is None:
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, int(port or 80)), timeout
                    )
                except (TimeoutError, OSError):
                    errors["connect"] += 1
                    await asyncio.sleep(0.01)
                    continue
            assert reader is not None
            started = time.perf_counter()
            try:
                writer.write(request)
                status, size, close = await asyncio.wait_for(_read_response(reader), timeout)
            except TimeoutError:
                errors["timeout"] += 1
                writer.close()
                writer = None
                continue
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors["read"] += 1
                writer.close()
                writer = None
                continue
            if loop.time() >= deadline:
                break  # finished after the clock stopped: not counted, as wrk does
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1
            read += size
            if close:
                writer.close()
                writer = None
        if writer is not None:
            writer.close()

    started = loop.time()
    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = min(loop.time(), deadline) - started
    latencies.sort()
    return LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        bytes_read=read,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        statuses=statuses,
        socket_errors=errors,
    )


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int, bool]:
    """(status, bytes read, the server closes the connection) of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, status = status_line.split(" ", 2)[:2]
    fields = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    close = version == "HTTP/1.0" or fields.get("connection", "").lower() == "close"
    size = len(head)
    if fields.get("transfer-encoding", "").lower() == "chunked":
        while True:
            chunk_head = await reader.readuntil(b"\r\n")
            length = int(chunk_head.split(b";")[0], 16)
            await reader.readexactly(length + 2)
            size += len(chunk_head) + length + 2
            if length == 0:
                break
    elif "content-length" in fields:
        length = int(fields["content-length"])
        await reader.readexactly(length)
        size += length
    elif close:
        size += len(await reader.read())
    return int(status), size, close


def percentile(ascending: list[float], p: float) -> float:
    """The nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not ascending:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(ascending)))
    return ascending[min(rank, len(ascending)) - 1]
