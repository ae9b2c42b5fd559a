// `forkd mcp`: serve the MCP tools on stdin/stdout (for an assistant's MCP config). Logs go
// to stderr only: stdout carries the protocol. The MCP stack (its SDK and zod, ~200 ms of
// module loading) is imported only when this command runs, not by every `forkd` invocation.
import { DEFAULT_TIMEOUT_MS } from 'forkd';
import { EXIT_OK, type Command } from '../command.js';
import { openController } from '../daemon.js';
import { clientFlags, parseFlags } from '../flags.js';

/** The tools' plain calls keep the SDK's default deadline; spawn and branch take their own. */
const MCP_TIMEOUT_SECS = DEFAULT_TIMEOUT_MS / 1000;
const FLAGS = clientFlags(MCP_TIMEOUT_SECS);

export const mcpCommand: Command = {
  name: 'mcp',
  group: 'tools',
  modes: 'daemon',
  summary: 'MCP server on stdio over the daemon (tools: spawn, list, exec, eval, files, branch, kill)',
  usage: ['mcp [flags]'],
  flags: FLAGS,
  examples: [
    'forkd mcp --url http://127.0.0.1:8889',
    '{"mcpServers": {"forkd": {"command": "forkd", "args": ["mcp"], "env": {"FORKD_URL": "http://127.0.0.1:8889"}}}}',
  ],
  notes: ['stdout carries the MCP protocol; logs go to stderr.'],
  async run(argv) {
    const { values } = parseFlags(argv, FLAGS);
    const [{ StdioServerTransport }, { createMcpServer }] = await Promise.all([
      import('@modelcontextprotocol/sdk/server/stdio.js'),
      import('../../mcp/server.js'),
    ]);
    const server = createMcpServer(await openController(values, MCP_TIMEOUT_SECS));
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
