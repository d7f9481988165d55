"""Interop: the official MCP Python SDK 1.x (handshake era only) against agent-hub.

Usage: mcp_sdk1_client.py URL ALICE_TOKEN BOB_TOKEN

`mcp.ClientSession` over `streamable_http_client` must end up on the initialize
handshake (1.x knows no later revision) with a session, and run a short workflow:
register, send, pull, a tool error. Prints INTEROP OK on success; any failed check
raises (non-zero exit).
"""

import asyncio
import json
import sys
from contextlib import AsyncExitStack

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

HANDSHAKE = ("2025-11-25", "2025-06-18", "2025-03-26")


class Recorder:
    """httpx event hooks: (JSON-RPC method, status, session header sent) per POST."""

    def __init__(self) -> None:
        self.posts: list[tuple[str | None, int, bool]] = []

    async def on_response(self, response: httpx.Response) -> None:
        request = response.request
        if request.method != "POST":
            return
        try:
            body = json.loads(request.content)
            method = body.get("method") if isinstance(body, dict) else None
        except ValueError:
            method = None
        self.posts.append((method, response.status_code, "mcp-session-id" in request.headers))


def payload(result) -> dict:
    """The tool's JSON object; structuredContent, when sent, must equal the text."""
    assert result.content and result.content[0].type == "text", result
    text = json.loads(result.content[0].text)
    if result.structuredContent is not None:
        assert result.structuredContent == text, (result.structuredContent, text)
    return text


async def session(stack: AsyncExitStack, url: str, token: str, rec: Recorder) -> ClientSession:
    client = httpx.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=30,
        event_hooks={"response": [rec.on_response]},
    )
    read, write, get_session_id = await stack.enter_async_context(
        streamable_http_client(url, http_client=client))
    s = await stack.enter_async_context(ClientSession(read, write))
    init = await s.initialize()
    assert init.protocolVersion in HANDSHAKE, init.protocolVersion
    assert init.serverInfo.name == "agent-hub", init.serverInfo
    assert get_session_id(), "no Mcp-Session-Id"
    return s


async def main(url: str, alice_token: str, bob_token: str) -> None:
    rec = Recorder()
    async with AsyncExitStack() as stack:
        alice = await session(stack, url, alice_token, rec)
        bob = await session(stack, url, bob_token, rec)
        assert rec.posts[0][:2] == ("initialize", 200), rec.posts
        assert not any(m == "server/discover" for (m, _, _) in rec.posts), rec.posts

        r = payload(await alice.call_tool("agent_register", {"name": "Alice (SDK 1.x)", "capabilities": ["interop"]}))
        assert r["ok"] is True and r["agent_id"] == "alice", r
        sent = payload(await alice.call_tool("message_send", {"to_agent": "bob", "subject": "s", "body": "from 1.x"}))
        got = payload(await bob.call_tool("inbox_pull", {"wait_seconds": 5}))
        assert [m["id"] for m in got["messages"]] == [sent["message_id"]], got
        payload(await bob.call_tool("message_ack", {"message_id": sent["message_id"]}))
        bad = await alice.call_tool("agent_register", {"name": "x", "capabilities": "not json"})
        assert bad.isError is True and payload(bad)["error"] == "INVALID_ARGUMENT", bad
        await alice.send_ping()
    # Every request after initialize went on a session.
    later = [p for p in rec.posts if p[0] != "initialize"]
    assert later and all(sent_session for (_, _, sent_session) in later), rec.posts
    print("INTEROP OK")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
