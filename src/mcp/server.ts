// `forkd mcp`: an MCP server (official TypeScript SDK) whose tools drive the daemon.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { FORKD_VERSION } from '../lib/version.js';
import type { Controller } from 'forkd';
import { forkdTools, runTool } from './tools.js';

export function createMcpServer(controller: Controller): McpServer {
  const server = new McpServer({ name: 'forkd', version: FORKD_VERSION });
  for (const def of forkdTools(controller)) {
    server.registerTool(def.name, { description: def.description, inputSchema: def.inputSchema }, (args) =>
      runTool(def, args as Record<string, unknown>),
    );
  }
  return server;
}
