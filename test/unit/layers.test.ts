// The layer rule of eslint.config.js, run through ESLint's Node API with the repository's own
// config: an upward import fails `npm run lint`, a downward one passes. The fixtures are linted
// as text under src/ paths; nothing is written into the tree. Type-aware rules are switched off
// for them (the TS project service only knows files on disk); the layer rule needs no types.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';

// dist/test/unit/layers.test.js -> the repository root
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const RULE = 'no-restricted-imports';

describe('layer rule (eslint no-restricted-imports per src/ folder)', () => {
  let eslint: ESLint;
  before(() => {
    eslint = new ESLint({
      cwd: ROOT,
      overrideConfig: [{ files: ['src/**/*.ts', 'packages/sdk/**/*.ts'], ...tseslint.configs.disableTypeChecked }],
    });
  });

  async function layerMessages(filePath: string, code: string): Promise<string[]> {
    const [result] = await eslint.lintText(code, { filePath });
    assert.ok(result, `no lint result for ${filePath}`);
    const fatal = result.messages.filter((m) => m.fatal);
    assert.deepEqual(fatal, [], `${filePath} did not parse`);
    return result.messages.filter((m) => m.ruleId === RULE).map((m) => m.message);
  }

  test('src/lib importing src/api is reported, naming the rule and the document', async () => {
    const messages = await layerMessages(
      'src/lib/fixture.ts',
      "import { OPENAPI_DOCUMENT } from '../api/openapi.js';\nexport const doc = OPENAPI_DOCUMENT;\n",
    );
    assert.equal(messages.length, 1, messages.join('\n'));
    assert.match(messages[0]!, /'\.\.\/api\/openapi\.js' import is restricted/);
    assert.match(messages[0]!, /src\/lib may import only its own files \(layers: docs\/ARCHITECTURE\.md\)/);
  });

  test('type-only imports and re-exports count too', async () => {
    const messages = await layerMessages(
      'src/lib/fixture.ts',
      "import type { Call } from '../api/http.js';\nexport type { Call };\nexport { commands } from '../cli/commands/index.js';\n",
    );
    assert.equal(messages.length, 2, messages.join('\n'));
  });

  test('a downward import is not reported', async () => {
    assert.deepEqual(
      await layerMessages(
        'src/api/fixture.ts',
        "import { ForkdError } from '../lib/errors.js';\nimport type { CoreContext } from '../core/context.js';\nexport type X = CoreContext | ForkdError;\n",
      ),
      [],
    );
    assert.deepEqual(
      await layerMessages(
        'src/core/controller/fixture.ts',
        "import { assertTag } from '../../lib/tag.js';\nimport { DataPaths } from '../paths.js';\nexport const x = [assertTag, DataPaths];\n",
      ),
      [],
    );
  });

  test('the narrower rules: api only through core, the SDK package nothing but node:, guest only protocol, nobody imports bin', async () => {
    const upward: [string, string][] = [
      ['src/api/fixture.ts', '../host/users.js'],
      ['src/api/fixture.ts', '../vmm/qmp.js'],
      ['src/guest/fixture.ts', '../lib/errors.js'],
      ['src/mcp/fixture.ts', '../core/context.js'],
      ['src/core/controller/fixture.ts', '../../api/http.js'],
      ['src/cli/commands/fixture.ts', '../../bin/forkd.js'],
    ];
    for (const [file, spec] of upward) {
      const messages = await layerMessages(file, `import * as m from '${spec}';\nexport { m };\n`);
      assert.equal(messages.length, 1, `${file} importing ${spec}: ${messages.join('\n') || 'not reported'}`);
    }
    // The SDK package: by name from cli, mcp and bin only; itself nothing but node: and its files.
    const sdk: [string, string, number][] = [
      ['src/core/fixture.ts', 'forkd', 1],
      ['src/api/fixture.ts', 'forkd', 1],
      ['src/cli/commands/fixture.ts', 'forkd', 0],
      ['src/mcp/fixture.ts', 'forkd', 0],
      ['src/cli/fixture.ts', '../sdk/index.js', 1],
      ['packages/sdk/src/fixture.ts', '../../../src/lib/errors.js', 1],
      ['packages/sdk/src/fixture.ts', 'ajv', 1],
      ['packages/sdk/src/fixture.ts', 'node:http', 0],
      ['packages/sdk/src/fixture.ts', './errors.js', 0],
    ];
    for (const [file, spec, n] of sdk) {
      const messages = await layerMessages(file, `import * as m from '${spec}';\nexport { m };\n`);
      assert.equal(messages.length, n, `${file} importing ${spec}: ${messages.join('\n') || 'not reported'}`);
    }
    // No file is excepted any more: api reaches agent types through core (src/core/api-surface.ts).
    for (const file of ['src/api/serialize.ts', 'src/api/metrics.ts']) {
      const messages = await layerMessages(
        file,
        "import type { ExecResult } from '../agent/client.js';\nexport type X = ExecResult;\n",
      );
      assert.equal(messages.length, 1, `${file}: ${messages.join('\n') || 'not reported'}`);
    }
    assert.deepEqual(
      await layerMessages(
        'src/api/serialize.ts',
        "import type { ExecResult } from '../core/api-surface.js';\nexport type X = ExecResult;\n",
      ),
      [],
    );
  });
});
