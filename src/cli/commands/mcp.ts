// `forkd mcp`: serve the MCP tools on stdin/stdout (for an assistant's MCP config). Logs go
// to stderr only: stdout carries the protocol.
import { parseArgs } from 'node:util';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createMcpServer } from '../../mcp/server.js';
import { EXIT_OK, type Command } from '../command.js';
import { CLIENT_FLAGS, CLIENT_USAGE, openController } from './daemon-client.js';

export const mcpCommand: Command = {
  name: 'mcp',
  summary: 'Daemon: MCP server on stdio (tools: spawn, list, exec, eval, files, branch, kill)',
  usage: `mcp ${CLIENT_USAGE}`,
  async run(argv) {
    const { values } = parseArgs({ args: argv, strict: true, allowPositionals: false, options: { ...CLIENT_FLAGS } });
    const server = createMcpServer(await openController(values));
    const transport = new StdioServerTransport();
    const closed = new Promise<void>((resolve) => {
      transport.onclose = () => resolve();
      process.stdin.once('end', () => resolve());
    });
    await server.connect(transport);
    await closed;
    await server.close();
    return EXIT_OK;
  },
};
