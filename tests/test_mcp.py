"""The app is an MCP server (launch(mcp_server=True)): a real MCP client session lists every endpoint as a
tool, with the docstrings' argument descriptions, and calls one with an image passed as base64."""
from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest

pytest.importorskip("mcp")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sr_tents_lr.png"


async def _session(url: str, work):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with streamablehttp_client(url) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await work(session)


def test_mcp_lists_the_tools_and_upscales_an_image(app_url):
    url = f"{app_url}/gradio_api/mcp/"

    async def work(session):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        image = "data:image/png;base64," + base64.b64encode(EXAMPLE.read_bytes()).decode()
        result = await session.call_tool("upscale_image",
                                         {"image": image, "model": "flashsr", "scale": "2", "tile": 256,
                                          "backend": "auto", "compare": False})
        return tools, result

    tools, result = asyncio.run(_session(url, work))
    assert {"upscale_image", "colorize_image", "uncertainty_map", "interpolate_frames", "process_video",
            "benchmark"} <= set(tools), sorted(tools)
    upscale = tools["upscale_image"]
    assert "Super-resolve" in upscale.description
    assert "2 or 4" in json.dumps(upscale.inputSchema)  # the docstring's Args reach the schema
    assert not result.isError, result.content
    text = json.dumps([c.model_dump() for c in result.content])
    assert "flashsr_x2" in text and "400" in text  # the summary names the model; output 400x180
