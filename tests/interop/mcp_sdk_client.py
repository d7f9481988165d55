"""Interop: the official MCP Python SDK (mcp 2.x) against agent-hub.

Usage: mcp_sdk_client.py URL ALICE_TOKEN [BOB_TOKEN]

1. The low-level `mcp.ClientSession` over `streamable_http_client`: initialize handshake,
   tools/list, hub_status, agent_register, agent_heartbeat, a refused call.
2. The high-level `mcp.Client` in its default "auto" mode: it probes `server/discover`
   (2026-07-28) first and falls back to `initialize` on our plain HTTP 400. The HTTP
   exchanges are recorded to check that this is what happened.
3. With BOB_TOKEN: a message from alice to bob through the SDK.

Prints INTEROP OK on success; any failed check raises (non-zero exit).
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client

REQUIRED_TOOLS = {"hub_status", "agent_register", "agent_heartbeat"}


class Recorder:
    """httpx2 event hooks: (HTTP method, JSON-RPC method or None, status) per exchange."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[str, str | None, int]] = []

    async def on_response(self, response: httpx2.Response) -> None:
        request = response.request
        rpc_method = None
        if request.method == "POST":
            try:
                body = json.loads(request.content)
                if isinstance(body, dict):
                    rpc_method = body.get("method")
            except ValueError:
                pass
        self.exchanges.append((request.method, rpc_method, response.status_code))


def http_client(token: str, recorder: Recorder | None = None) -> httpx2.AsyncClient:
    hooks = {"response": [recorder.on_response]} if recorder else {}
    return httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=30, event_hooks=hooks
    )


def payload(result) -> dict:
    """The tool's JSON object; structuredContent, when sent, must equal the text."""
    assert result.content and result.content[0].type == "text", result
    text = json.loads(result.content[0].text)
    if result.structured_content is not None:
        assert result.structured_content == text, (result.structured_content, text)
    return text


async def with_client_session(url: str, token: str) -> None:
    async with streamable_http_client(url, http_client=http_client(token)) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.protocol_version in ("2025-11-25", "2025-06-18", "2025-03-26"), init
            assert init.server_info.name == "agent-hub", init.server_info
            assert init.capabilities.tools is not None, init.capabilities

            tools = await session.list_tools()
            names = {t.name for t in tools.tools}
            assert REQUIRED_TOOLS <= names, REQUIRED_TOOLS - names
            for t in tools.tools:
                assert t.input_schema.get("type") == "object", t
            status_tool = next(t for t in tools.tools if t.name == "hub_status")
            assert status_tool.annotations is not None, status_tool
            assert status_tool.annotations.read_only_hint is True, status_tool.annotations

            s = payload(await session.call_tool("hub_status", {}))
            assert s["ok"] is True and s["transport"] == "streamable-http", s
            assert s["version"] == "0.1.0", s

            r = payload(await session.call_tool(
                "agent_register", {"name": "Alice (Python SDK)", "capabilities": ["interop"]}))
            assert r["ok"] is True and r["agent_id"] == "alice", r
            assert r["name"] == "Alice (Python SDK)" and r["capabilities"] == ["interop"], r

            h = payload(await session.call_tool("agent_heartbeat", {}))
            assert h["ok"] is True and h["agent_id"] == "alice" and h["last_heartbeat"], h

            bad = await session.call_tool("agent_register", {"name": "x", "capabilities": "not json"})
            assert bad.is_error is True, bad
            assert payload(bad)["error"] == "INVALID_ARGUMENT", bad

            await session.send_ping()
    print("ClientSession: ok")


async def with_client_auto(url: str, alice_token: str, bob_token: str | None) -> None:
    rec = Recorder()
    async with Client(streamable_http_client(url, http_client=http_client(alice_token, rec))) as alice:
        posts = [(m, s) for (verb, m, s) in rec.exchanges if verb == "POST"]
        assert posts and posts[0] == ("server/discover", 200), rec.exchanges
        assert alice.protocol_version == "2026-07-28", alice.protocol_version
        assert not any(m == "initialize" for (m, _) in posts), rec.exchanges

        s = payload(await alice.call_tool("hub_status", {}))
        assert s["ok"] is True, s
        h = payload(await alice.call_tool("agent_heartbeat", {}))
        assert h["agent_id"] == "alice", h

        if bob_token:
            async with Client(streamable_http_client(url, http_client=http_client(bob_token))) as bob:
                sent = payload(await alice.call_tool(
                    "message_send", {"to_agent": "bob", "subject": "hello", "body": "from the SDK"}))
                got = payload(await bob.call_tool("inbox_pull", {"wait_seconds": 5}))
                assert [m["id"] for m in got["messages"]] == [sent["message_id"]], got
                payload(await bob.call_tool("message_ack", {"message_id": sent["message_id"]}))
    print("Client (auto): ok")


async def main(url: str, alice_token: str, bob_token: str | None) -> None:
    await with_client_session(url, alice_token)
    await with_client_auto(url, alice_token, bob_token)
    print("INTEROP OK")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else None))
