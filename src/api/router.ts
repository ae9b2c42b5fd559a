// Matches a request to an operation of the OpenAPI document. Paths are split on "/" *before*
// percent-decoding, so an encoded slash stays inside its segment ("a%2Fb" is one id, and then
// an invalid one) and "/v1/sandboxes/../exec" is the id ".." (invalid), never a traversal.
import { ForkdError } from '../lib/errors.js';
import type { Operation } from './validation.js';

export type RouteMatch =
  | { kind: 'found'; op: Operation; params: Record<string, string> }
  | { kind: 'not_found' }
  | { kind: 'method_not_allowed'; allow: string[] };

export class Router {
  readonly #routes: { op: Operation; segments: ({ literal: string } | { param: string })[] }[];

  constructor(ops: readonly Operation[]) {
    this.#routes = ops.map((op) => ({
      op,
      segments: op.template
        .split('/')
        .slice(1)
        .map((s) => (s.startsWith('{') && s.endsWith('}') ? { param: s.slice(1, -1) } : { literal: s })),
    }));
  }

  match(method: string, rawPath: string): RouteMatch {
    const raw = rawPath.split('/').slice(1);
    const allow: string[] = [];
    for (const route of this.#routes) {
      if (route.segments.length !== raw.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < raw.length && ok; i++) {
        const seg = route.segments[i]!;
        if ('literal' in seg) ok = seg.literal === raw[i];
        else params[seg.param] = decodeSegment(raw[i]!);
      }
      if (!ok) continue;
      if (route.op.method === method.toLowerCase()) return { kind: 'found', op: route.op, params };
      allow.push(route.op.method.toUpperCase());
    }
    return allow.length > 0 ? { kind: 'method_not_allowed', allow } : { kind: 'not_found' };
  }
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ForkdError(
      'invalid_argument',
      `path segment ${JSON.stringify(segment.slice(0, 80))} is not valid percent-encoding`,
    );
  }
}
