#!/usr/bin/env python3
"""Start-up, memory and shutdown of a hub on a database with months of history.

Usage (release build, run from the repository root):
  cargo build --release
  python3 benches/history.py --hubctl target/release/hubctl --config-dir DIR --db FILE

DIR must hold agents.env (the agents that `hubctl fill-history` used); FILE is a
database filled with `hubctl --config-dir DIR fill-history --db FILE` (or a missing
file, for the empty baseline). Prints one line per figure of docs/benchmarks.md.
Only the Python standard library is used.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import time
import http.client
import threading
import urllib.request


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def first_token(config_dir):
    with open(os.path.join(config_dir, "agents.env")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                return line.split("=", 1)[1].strip().strip('"')
    raise SystemExit("no agent in agents.env")


def post(url, body, headers):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    for k, v in headers.items():
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.headers, json.loads(r.read() or b"null")


def call_tool(base, token, name, args=None):
    """initialize, then one tools/call; returns the call's result."""
    h = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    hdrs, _ = post(base + "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "history-bench", "version": "1"}}}, h)
    h["Mcp-Session-Id"] = hdrs["mcp-session-id"]
    h["MCP-Protocol-Version"] = "2025-11-25"
    _, r = post(base + "/mcp", {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                "params": {"name": name, "arguments": args or {}}}, h)
    return r


class Session:
    """One agent's MCP session on a keep-alive connection."""

    def __init__(self, port, token):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.h = {"Authorization": f"Bearer {token}",
                  "Accept": "application/json, text/event-stream",
                  "Content-Type": "application/json"}
        r = self.rpc("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                    "clientInfo": {"name": "history-bench", "version": "1"}})
        self.h["MCP-Protocol-Version"] = "2025-11-25"

    def rpc(self, method, params):
        self.c.request("POST", "/mcp", json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}), self.h)
        r = self.c.getresponse()
        sid = r.getheader("mcp-session-id")
        if sid:
            self.h["Mcp-Session-Id"] = sid
        return json.loads(r.read() or b"null")

    def tool(self, name, args):
        r = self.rpc("tools/call", {"name": name, "arguments": args})
        return r["result"]["structuredContent"]


def agents_of(config_dir):
    out = []
    with open(os.path.join(config_dir, "agents.env")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                out.append((k.strip(), v.strip().strip('"')))
    return out


def growth(port, config_dir, total, pid):
    """`total` message_send spread over every agent (each to the next one), then
    every recipient pulls and acks all; RSS before, after the sends, after the acks."""
    agents = agents_of(config_dir)
    before = rss_mib(pid)
    n = len(agents)
    per = total // n

    def send(i):
        s = Session(port, agents[i][1])
        to = agents[(i + 1) % n][0]
        for k in range(per):
            s.tool("message_send", {"to_agent": to, "subject": f"growth {k}", "body": "y" * 200})

    def drain(i):
        s = Session(port, agents[i][1])
        while True:
            got = s.tool("inbox_pull", {"limit": 200})["messages"]
            if not got:
                return
            s.tool("message_ack", {"message_id": [m["id"] for m in got]})

    t = time.monotonic()
    run_all(send, n)
    sent = rss_mib(pid)
    took = time.monotonic() - t
    run_all(drain, n)
    time.sleep(3)  # freed memory returns to the OS within a second or two
    print(f"{per * n} sends over {n} agents:   {took:8.1f} s; RSS {before:.1f} -> {sent:.1f} MiB, "
          f"after pull + ack of all {rss_mib(pid):.1f} MiB")


def run_all(f, n):
    threads = [threading.Thread(target=f, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hubctl", default="target/release/hubctl")
    ap.add_argument("--config-dir", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--list-tasks", action="store_true",
                    help="also time `hubctl list-tasks` (the operator's task list)")
    ap.add_argument("--growth", type=int, default=0,
                    help="also send this many messages, then pull and ack them all")
    ap.add_argument("--server-log", default=os.devnull,
                    help="the server's stderr goes here (e.g. with _RJEM_MALLOC_CONF=stats_print:true)")
    ap.add_argument("--bursts", type=int, default=1,
                    help="repeat the growth run this many times (does memory settle?)")
    a = ap.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    token = first_token(a.config_dir)
    env = dict(os.environ, RUST_LOG="warn")
    t0 = time.monotonic()
    p = subprocess.Popen([a.hubctl, "--config-dir", a.config_dir, "--port", str(port),
                          "serve", "--db", a.db], stdout=subprocess.DEVNULL,
                         stderr=open(a.server_log, "w"), env=env)
    port_open = None
    while port_open is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
            port_open = time.monotonic() - t0
        except OSError:
            if p.poll() is not None:
                raise SystemExit("the hub exited during start-up")
            time.sleep(0.002)
    served = None
    while served is None:
        try:
            r = call_tool(base, token, "hub_status")
            if r.get("result", {}).get("isError") is not True:
                served = time.monotonic() - t0
        except Exception:
            time.sleep(0.005)
    time.sleep(0.5)
    print(f"port open after start:        {port_open * 1000:8.1f} ms")
    print(f"first tool served after start: {served * 1000:8.1f} ms")
    print(f"RSS after start:               {rss_mib(p.pid):8.1f} MiB")
    if a.list_tasks:
        before = rss_mib(p.pid)
        t = time.monotonic()
        out = subprocess.run([a.hubctl, "--config-dir", a.config_dir, "--url", base,
                              "--json", "list-tasks", "--all", "--limit", "100"], capture_output=True)
        took = time.monotonic() - t
        print(f"list-tasks --all --limit 100:          {took * 1000:8.1f} ms, "
              f"{len(out.stdout) / 2**20:.1f} MiB answer, server RSS "
              f"{before:.1f} -> {rss_mib(p.pid):.1f} MiB")
    if a.growth:
        for _ in range(a.bursts):
            growth(port, a.config_dir, a.growth, p.pid)
    t = time.monotonic()
    p.send_signal(signal.SIGTERM)
    p.wait()
    print(f"SIGTERM to exit:               {(time.monotonic() - t) * 1000:8.1f} ms "
          f"(exit status {p.returncode})")


if __name__ == "__main__":
    main()
