"""Interop: the official MCP Python SDK (mcp 2.x) against agent-hub.

Usage: mcp_sdk_client.py URL ALICE_TOKEN BOB_TOKEN
The SDK's default connect mode probes `server/discover` (2026-07-28) first and falls
back to the initialize handshake on our plain 400; then it lists tools and calls them.
Prints INTEROP OK on success; any failed check raises.
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


def client(url: str, token: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return Client(streamable_http_client(url, http_client=http))


def payload(result) -> dict:
    text = json.loads(result.content[0].text)
    if result.structured_content is not None:
        assert result.structured_content == text, (result.structured_content, text)
    return text


async def main(url: str, alice_token: str, bob_token: str) -> None:
    async with client(url, alice_token) as alice, client(url, bob_token) as bob:
        tools = await alice.list_tools()
        names = {t.name for t in tools.tools}
        expected = {
            "hub_status", "agent_register", "agent_heartbeat", "message_send", "inbox_pull",
            "message_ack", "task_draft_create", "round_plan_submit", "assignment_list",
            "assignment_claim", "assignment_progress", "assignment_complete", "handoff_get",
            "review_submit",
        }
        assert expected <= names, expected - names
        status = next(t for t in tools.tools if t.name == "hub_status")
        assert status.annotations is not None and status.annotations.read_only_hint is True

        s = payload(await alice.call_tool("hub_status", {}))
        assert s["ok"] is True and s["transport"] == "streamable-http", s
        assert s["agent_id"] == "alice", s

        r = payload(await alice.call_tool("agent_register", {"name": "Alice (Python SDK)", "capabilities": ["interop"]}))
        assert r["ok"] is True and r["agent_id"] == "alice" and r["capabilities"] == ["interop"], r

        h = payload(await alice.call_tool("agent_heartbeat", {}))
        assert h["ok"] is True and h["last_heartbeat"], h

        bad = await alice.call_tool("agent_register", {"name": "x", "capabilities": "not json"})
        assert bad.is_error is True, bad
        assert payload(bad)["error"] == "INVALID_ARGUMENT"

        sent = payload(await alice.call_tool("message_send", {"to_agent": "bob", "subject": "hello", "body": "from the SDK"}))
        got = payload(await bob.call_tool("inbox_pull", {"wait_seconds": 5}))
        assert [m["id"] for m in got["messages"]] == [sent["message_id"]], got
        payload(await bob.call_tool("message_ack", {"message_id": sent["message_id"]}))
    print("INTEROP OK")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
