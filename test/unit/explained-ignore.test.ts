// The `forkd/explained-ignore` rule of eslint.config.js (scripts/eslint-explained-ignore.mjs),
// run through ESLint's Node API with the repository's own config on fixture text under src/:
// a dropped error without a reason fails `npm run lint`; a comment, a read of the error or a
// throw in its place passes. Type-aware rules are off for the fixtures (as in layers.test.ts).
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const RULE = 'forkd/explained-ignore';

describe('explained-ignore: caught-and-dropped errors say why', () => {
  let eslint: ESLint;
  before(() => {
    eslint = new ESLint({
      cwd: ROOT,
      overrideConfig: [{ files: ['src/**/*.ts'], ...tseslint.configs.disableTypeChecked }],
    });
  });

  async function flagged(code: string): Promise<number[]> {
    const [result] = await eslint.lintText(code, { filePath: 'src/lib/fixture.ts' });
    assert.ok(result);
    assert.deepEqual(
      result.messages.filter((m) => m.fatal),
      [],
    );
    return result.messages.filter((m) => m.ruleId === RULE).map((m) => m.line);
  }

  const f = (body: string): string => `export async function f(p: Promise<number>): Promise<unknown> {\n${body}\n}\n`;

  test('dropping without a reason is reported: catch {}, an unread catch binding, .catch(() => x)', async () => {
    assert.deepEqual(await flagged(f('  try {\n    return await p;\n  } catch {\n    return 0;\n  }')), [4]);
    assert.deepEqual(await flagged(f('  try {\n    return await p;\n  } catch (e) {\n    return 0;\n  }')), [4]);
    assert.deepEqual(await flagged(f('  return p.catch(() => 0);')), [2]);
    assert.deepEqual(await flagged(f('  return p.catch((_err: unknown) => undefined);')), [2]);
  });

  test('a reason, a read of the error or a throw in its place passes', async () => {
    assert.deepEqual(
      await flagged(f('  try {\n    return await p;\n  } catch {\n    // absent: zero\n    return 0;\n  }')),
      [],
    );
    assert.deepEqual(await flagged(f('  return p.catch(() => 0); // absent: zero')), []);
    assert.deepEqual(await flagged(f('  return p.catch((e: unknown) => String(e));')), []);
    assert.deepEqual(
      await flagged(f("  try {\n    return await p;\n  } catch {\n    throw new Error('p failed');\n  }")),
      [],
    );
    assert.deepEqual(await flagged(f("  return p.catch(() => {\n    throw new Error('p failed');\n  });")), []);
  });
});
