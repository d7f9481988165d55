"""Interop: the official MCP Python SDK (mcp 2.x) against agent-hub.

Usage: mcp_sdk_client.py URL ALICE_TOKEN BOB_TOKEN

1. The low-level `mcp.ClientSession` over `streamable_http_client`: the initialize
   handshake (the SDK's legacy era), tools/list, hub_status, agent_register,
   agent_heartbeat, a refused call, ping.
2. The high-level `mcp.Client` pinned to 2026-07-28 (`mode="2026-07-28"`): no
   handshake, no session; a short workflow (register, send, pull, a tool error), a
   `subscriptions/listen` stream that sees the message arrive, and a waiting pull
   cancelled by the client (closing its stream) that loses nothing.
3. `mcp.Client` in its default "auto" mode: it probes `server/discover` and must stay
   on 2026-07-28 (no `initialize`); the same short workflow.
4. Claude Code channel events (`notifications/claude/channel`, a method the SDK does
   not know) arrive on the SDK's GET stream and listen stream while it keeps working:
   no exception reaches its message handler and nothing is logged above debug about
   them. A raw listen stream beside it shows that the events were sent.

Every HTTP exchange is recorded to check what went over the wire. Prints INTEROP OK on
success; any failed check raises (non-zero exit).
"""

import asyncio
import json
import logging
import sys

import anyio
import httpx2
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client

MODERN = "2026-07-28"
INBOX = "agent-hub://inbox"
REQUIRED_TOOLS = {"hub_status", "agent_register", "agent_heartbeat"}


class Recorder:
    """httpx2 event hooks: each exchange's HTTP method, JSON-RPC method, status and headers."""

    def __init__(self) -> None:
        self.exchanges: list[dict] = []

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
        self.exchanges.append({
            "verb": request.method,
            "method": rpc_method,
            "status": response.status_code,
            "version": request.headers.get("mcp-protocol-version"),
            "sent_session": "mcp-session-id" in request.headers,
            "got_session": "mcp-session-id" in response.headers,
        })

    def posts(self) -> list[tuple[str | None, int]]:
        return [(e["method"], e["status"]) for e in self.exchanges if e["verb"] == "POST"]

    def assert_modern(self) -> None:
        """Nothing of the handshake era went over the wire."""
        assert self.exchanges, "no exchanges recorded"
        for e in self.exchanges:
            assert e["verb"] == "POST", e
            assert e["method"] != "initialize", e
            assert e["version"] == MODERN, e
            assert not e["sent_session"] and not e["got_session"], e


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
    print("ClientSession (handshake): ok")


async def workflow(alice: Client, bob: Client, name: str) -> None:
    """register, send, pull, a tool error."""
    assert alice.protocol_version == MODERN and bob.protocol_version == MODERN
    tools = await alice.list_tools()
    assert REQUIRED_TOOLS <= {t.name for t in tools.tools}, tools
    r = payload(await alice.call_tool("agent_register", {"name": name, "capabilities": ["interop"]}))
    assert r["ok"] is True and r["agent_id"] == "alice" and r["name"] == name, r
    sent = payload(await alice.call_tool(
        "message_send", {"to_agent": "bob", "subject": "hello", "body": f"from {name}"}))
    assert sent["ok"] is True, sent
    got = payload(await bob.call_tool("inbox_pull", {"wait_seconds": 5}))
    assert [m["id"] for m in got["messages"]] == [sent["message_id"]], got
    payload(await bob.call_tool("message_ack", {"message_id": sent["message_id"]}))
    bad = await alice.call_tool("agent_register", {"name": "x", "capabilities": "not json"})
    assert bad.is_error is True and payload(bad)["error"] == "INVALID_ARGUMENT", bad


async def with_client_modern(url: str, alice_token: str, bob_token: str) -> None:
    rec = Recorder()
    async with Client(streamable_http_client(url, http_client=http_client(alice_token, rec)), mode=MODERN) as alice, \
            Client(streamable_http_client(url, http_client=http_client(bob_token, rec)), mode=MODERN) as bob:
        await workflow(alice, bob, "Alice (2026-07-28)")

        # A listen stream on bob's inbox sees alice's next message.
        with anyio.fail_after(20):
            async with bob.listen(resource_subscriptions=[INBOX, "file:///elsewhere"]) as sub:
                assert list(sub.honored.resource_subscriptions or []) == [INBOX], sub.honored
                sent = payload(await alice.call_tool(
                    "message_send", {"to_agent": "bob", "subject": "pushed", "body": "b"}))
                async for event in sub:
                    assert getattr(event, "uri", None) == INBOX, event
                    break
        got = payload(await bob.call_tool("inbox_pull", {}))
        assert [m["id"] for m in got["messages"]] == [sent["message_id"]], got
        payload(await bob.call_tool("message_ack", {"message_id": sent["message_id"]}))

        # Cancelling a waiting pull closes its stream; the message sent after it is
        # still unread and the next pull gets it.
        with anyio.move_on_after(1) as scope:
            await bob.call_tool("inbox_pull", {"wait_seconds": 20})
        assert scope.cancelled_caught, "the pull returned although nothing was sent"
        sent = payload(await alice.call_tool(
            "message_send", {"to_agent": "bob", "subject": "after", "body": "b"}))
        got = payload(await bob.call_tool("inbox_pull", {"wait_seconds": 5}))
        assert [m["id"] for m in got["messages"]] == [sent["message_id"]], got
        payload(await bob.call_tool("message_ack", {"message_id": sent["message_id"]}))
    rec.assert_modern()
    print("Client (2026-07-28): ok")


async def with_client_auto(url: str, alice_token: str, bob_token: str) -> None:
    rec = Recorder()
    async with Client(streamable_http_client(url, http_client=http_client(alice_token, rec))) as alice, \
            Client(streamable_http_client(url, http_client=http_client(bob_token, rec))) as bob:
        posts = rec.posts()
        assert posts[:2] == [("server/discover", 200)] * 2, rec.exchanges
        assert alice.server_info is not None and alice.server_info.name == "agent-hub", alice.server_info
        await workflow(alice, bob, "Alice (auto)")
    rec.assert_modern()
    print("Client (auto, ended on 2026-07-28): ok")


class Warnings(logging.Handler):
    """Every record of WARNING or above logged by the SDK."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


async def raw_channel_events(url: str, token: str, want: int, got: list[dict]) -> None:
    """Open a raw 2026-07-28 listen stream and add `want` channel events off it to `got`."""
    params = {
        "notifications": {},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        },
    }
    body = {"jsonrpc": "2.0", "id": "raw", "method": "subscriptions/listen", "params": params}
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "subscriptions/listen",
    }
    async with httpx2.AsyncClient(timeout=30) as raw:
        async with raw.stream("POST", url, json=body, headers=headers) as resp:
            assert resp.status_code == 200, resp.status_code
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("method") == "notifications/claude/channel":
                    got.append(msg["params"])
                    if len(got) >= want:
                        return


async def with_channel_events(url: str, alice_token: str, bob_token: str) -> None:
    warnings = Warnings()
    logging.getLogger("mcp").addHandler(warnings)
    logging.getLogger("mcp").setLevel(logging.DEBUG)
    seen: list[object] = []

    async def handler(message) -> None:
        seen.append(message)

    async with streamable_http_client(url, http_client=http_client(alice_token)) as (read, write):
        async with ClientSession(read, write, message_handler=handler) as session, \
                Client(streamable_http_client(url, http_client=http_client(alice_token)), mode=MODERN) as modern, \
                Client(streamable_http_client(url, http_client=http_client(bob_token)), mode=MODERN) as bob:
            await session.initialize()
            with anyio.fail_after(30):
                async with modern.listen(resource_subscriptions=[INBOX]) as sub:
                    async with anyio.create_task_group() as tg:
                        raw: list[dict] = []
                        tg.start_soon(raw_channel_events, url, alice_token, 2, raw)
                        await anyio.sleep(0.5)  # the raw stream is registered
                        ids = []
                        for i in range(3):
                            sent = payload(await bob.call_tool(
                                "message_send", {"to_agent": "alice", "subject": f"c{i}", "body": "b"}))
                            ids.append(sent["message_id"])
                        # The SDK's listen stream still yields its inbox events.
                        # (it may merge updates of one URI into one event)
                        async for event in sub:
                            assert getattr(event, "uri", None) == INBOX, event
                            break
                        # A channel event was sent (coalesced) to alice's streams;
                        # then a second one, for a later message.
                        while not raw:
                            await anyio.sleep(0.1)
                        sent = payload(await bob.call_tool(
                            "message_send", {"to_agent": "alice", "subject": "late", "body": "b"}))
                        ids.append(sent["message_id"])
                    assert len(raw) == 2, raw
                    assert all(p["meta"]["kind"] == "message" and p["meta"]["from"] == "bob" for p in raw), raw
                    async for event in sub:
                        assert getattr(event, "uri", None) == INBOX, event
                        break
            # Both SDK clients keep working after the events.
            s = payload(await session.call_tool("hub_status", {}))
            assert s["ok"] is True, s
            got = payload(await modern.call_tool("inbox_pull", {"limit": 200}))
            assert [m["id"] for m in got["messages"]][-4:] == ids, got
            payload(await modern.call_tool("message_ack", {"message_id": ids}))
            await session.send_ping()
    errors = [m for m in seen if isinstance(m, Exception)]
    assert not errors, errors
    assert not warnings.records, warnings.records
    logging.getLogger("mcp").removeHandler(warnings)
    print("channel events ignored by the SDK: ok")


async def main(url: str, alice_token: str, bob_token: str) -> None:
    await with_client_session(url, alice_token)
    await with_client_modern(url, alice_token, bob_token)
    await with_client_auto(url, alice_token, bob_token)
    await with_channel_events(url, alice_token, bob_token)
    print("INTEROP OK")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
