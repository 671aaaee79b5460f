"""The pure parts of the MCP client: tool names on a clash, schema checks, argument validation,
results as text for the model, and the [mcp] configuration's one-line errors."""

from __future__ import annotations

from pathlib import Path

import mcp_types
import pytest

from runtime.config import McpServerConfig, load_config
from runtime.core.errors import ConfigError
from runtime.tools import ToolArgumentsError
from runtime.tools.mcp.content import result_text
from runtime.tools.mcp.tools import InvalidToolSchema, check_input_schema, make_tool, registered_name, safe_name


def test_a_free_name_is_kept_a_taken_one_is_qualified_by_the_server() -> None:
    taken = {"echo"}
    assert registered_name("notes", "add", taken.__contains__) == "add"
    assert registered_name("notes", "echo", taken.__contains__) == "notes__echo"
    assert safe_name("files.read/v2") == "files_read_v2" and len(safe_name("x" * 100)) == 64


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        ([], "not a JSON object"),
        ({"type": "string"}, "not 'object'"),
        ({"type": "object", "properties": {"x": {"type": "bogus"}}}, "not a valid JSON Schema at properties/x/type"),
        ({"type": "object", "required": "x"}, "not a valid JSON Schema at required"),
    ],
)
def test_invalid_input_schemas_are_refused_with_the_reason(schema: object, why: str) -> None:
    with pytest.raises(InvalidToolSchema, match=why):
        check_input_schema(schema)


async def test_arguments_are_validated_against_the_servers_schema() -> None:
    async def call(name: str, arguments: dict[str, object]) -> str:
        return f"{name} {arguments}"

    listed = mcp_types.Tool(
        name="add",
        description="Add two integers.",
        input_schema={"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"], "title": "x"},
    )
    config = McpServerConfig(command="x", permission="deny", permissions={"add": "allow"})
    tool = make_tool("calc", config, listed, "add", call, 5.0)
    assert tool.permission == "allow" and tool.plugin == "mcp:calc" and "title" not in tool.parameters
    assert tool.to_openai()["function"]["parameters"]["required"] == ["a"]
    with pytest.raises(ToolArgumentsError, match="a: 'one' is not of type 'integer'"):
        tool.validate({"a": "one"})
    with pytest.raises(ToolArgumentsError, match="'a' is a required property"):
        tool.validate({})
    assert await tool.invoke(tool.validate({"a": 1})) == "add {'a': 1}"


def test_results_become_text_for_the_model() -> None:
    text = mcp_types.TextContent(type="text", text="hello")
    image = mcp_types.ImageContent(type="image", data="aGVsbG8=", mime_type="image/png")
    link = mcp_types.ResourceLink(type="resource_link", name="readme", uri="file:///readme.md")
    assert result_text(mcp_types.CallToolResult(content=[text, image, link])) == (
        "hello\n[image image/png, 5 bytes]\n[resource readme: file:///readme.md]"
    )
    structured = mcp_types.CallToolResult(content=[], structured_content={"result": 3})
    assert result_text(structured) == '{"result": 3}'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[mcp.servers.t]\nargs = []\n", "[mcp.servers.t] needs exactly one of command (a stdio server) and url"),
        ('[mcp.servers.t]\ncomand = "x"\n', 'unknown key [mcp.servers.t].comand; did you mean "command"?'),
        ('[mcp.servers.t]\ncommand = "x"\ntimeout = 0\n', "[mcp.servers.t].timeout must be a number > 0, got 0"),
        (
            '[mcp.servers.t]\ncommand = "x"\npermission = "maybe"\n',
            "[mcp.servers.t].permission must be one of allow, ask, deny",
        ),
        ('[mcp.servers."a.b"]\ncommand = "x"\n', "a server name is 1-32 letters, digits, '_' or '-'"),
    ],
)
def test_mcp_config_errors_are_one_line_naming_the_file_and_key(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as caught:
        load_config(config_file=path, repo_config=None, environ={})
    assert caught.value.message.startswith(f"{path}: ") and message in caught.value.message
