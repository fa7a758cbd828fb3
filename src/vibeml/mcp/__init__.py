"""The MCP server (`vibeml mcp`)."""
