// A local ESLint rule, `forkd/explained-ignore`: an error that is caught and dropped must say
// why dropping it is safe. It flags
//   - `try {} catch {}` and `catch (e)` whose body never reads `e`,
//   - `promise.catch(() => ...)` / `.catch((_e) => ...)` whose handler never reads its error,
// unless a comment sits on the lines of the catch (for a try, also the line above the `try`;
// for `.catch`, the line above the statement or the one below the call). A handler that reads the error (logs it,
// rethrows it, tests its code) is not flagged, nor a catch that throws an error of its own in
// place of the caught one: it translates, it does not drop.

/** Whether `name` is read anywhere inside `node` (scope-aware enough for our small handlers). */
function reads(context, fnOrClause, name) {
  const scope = context.sourceCode.getScope(fnOrClause);
  const variable = scope.variables.find((v) => v.name === name);
  return variable !== undefined && variable.references.length > 0;
}

function hasCommentBetween(context, fromLine, toLine) {
  return context.sourceCode.getAllComments().some((c) => c.loc.end.line >= fromLine && c.loc.start.line <= toLine);
}

/** Whether a catch body throws (not counting functions defined inside it). */
function throwsInstead(node) {
  if (!node || typeof node.type !== 'string') return false;
  if (node.type === 'ThrowStatement') return true;
  if (/Function/.test(node.type)) return false;
  for (const [key, value] of Object.entries(node)) {
    if (key === 'parent') continue;
    const kids = Array.isArray(value) ? value : [value];
    if (kids.some((k) => k && typeof k === 'object' && throwsInstead(k))) return true;
  }
  return false;
}

function statementOf(node) {
  let n = node;
  while (n.parent && !/Statement|Declaration$/.test(n.parent.type) && n.parent.type !== 'Program') n = n.parent;
  return n.parent && n.parent.type !== 'Program' ? n.parent : n;
}

const MESSAGE =
  'this catch drops the error: say why that is safe in a comment here, or log it (with the sandbox id when there is one)';

export const explainedIgnore = {
  meta: { type: 'suggestion', docs: { description: 'caught-and-dropped errors carry a comment' }, schema: [] },
  create(context) {
    return {
      CatchClause(node) {
        const dropped =
          node.param === null || (node.param.type === 'Identifier' && !reads(context, node, node.param.name));
        if (!dropped || throwsInstead(node.body)) return;
        const tryLine = node.parent.loc.start.line;
        // The try's own block is not where the reason goes, unless it is one line.
        const ok =
          hasCommentBetween(context, tryLine - 1, tryLine) ||
          hasCommentBetween(context, node.loc.start.line - 1, node.loc.end.line);
        if (!ok) context.report({ node, message: MESSAGE });
      },
      CallExpression(node) {
        const callee = node.callee;
        if (callee.type !== 'MemberExpression' || callee.property.type !== 'Identifier') return;
        if (callee.property.name !== 'catch' || node.arguments.length !== 1) return;
        const handler = node.arguments[0];
        if (handler.type !== 'ArrowFunctionExpression' && handler.type !== 'FunctionExpression') return;
        const param = handler.params[0];
        const dropped = param === undefined || (param.type === 'Identifier' && !reads(context, handler, param.name));
        if (!dropped || throwsInstead(handler.body)) return;
        const stmt = statementOf(node);
        // Prettier moves a trailing comment after `for (... .catch(...)) {` into the block: the line below counts.
        const ok =
          hasCommentBetween(context, callee.property.loc.start.line, node.loc.end.line + 1) ||
          hasCommentBetween(context, stmt.loc.start.line - 1, stmt.loc.start.line) ||
          hasCommentBetween(context, stmt.loc.end.line, stmt.loc.end.line);
        if (!ok) context.report({ node: callee.property, message: MESSAGE });
      },
    };
  },
};

export default { rules: { 'explained-ignore': explainedIgnore } };
