// Request (and, for tests, response) validation compiled from the OpenAPI document with ajv:
// one source for the contract, the router and the checks. ajv earns its place over
// hand-written checks because the same schemas must also validate every response in the
// integration tests; two validators of one document would drift.
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { OPENAPI_DOCUMENT } from './openapi.js';

const SCHEMA_ID = 'forkd-api';
/** Request bodies of this type are handed to the handler unread (snapshot packs: GiBs). */
export const STREAM_TYPE = 'application/zstd';
const BYTE_TYPES = new Set(['application/octet-stream', STREAM_TYPE]);

export type Method = 'get' | 'post' | 'put' | 'delete';
export const METHODS: readonly Method[] = ['get', 'post', 'put', 'delete'];

interface Parameter {
  name: string;
  in: 'path' | 'query';
  required?: boolean;
  schema: unknown;
}

export interface Operation {
  operationId: string;
  method: Method;
  template: string;
  /** Path parameter validators, in template order. */
  pathParams: { name: string; validate: ValidateFunction }[];
  query: { name: string; required: boolean; validate: ValidateFunction }[];
  /** `json`: a JSON body checked by `body`; `binary`: raw bytes; `stream`: unread (a pack); `none`: no body. */
  bodyKind: 'json' | 'binary' | 'stream' | 'none';
  bodyRequired: boolean;
  body: ValidateFunction | undefined;
  /** Response validators by status ("200", "default"), by content type. */
  responses: Map<string, Map<string, ValidateFunction | undefined>>;
}

/** The document's `#/components/schemas/X` refs, re-rooted so ajv resolves them from one schema. */
function rerooted<T>(value: T): T {
  return JSON.parse(JSON.stringify(value).replaceAll('"#/components/schemas/', `"${SCHEMA_ID}#/$defs/`)) as T;
}

export function createAjv(): Ajv2020 {
  const ajv = new Ajv2020({
    allErrors: false,
    useDefaults: true,
    allowUnionTypes: true,
    strict: true,
    strictRequired: false,
  });
  ajv.addSchema({ $id: SCHEMA_ID, $defs: rerooted(OPENAPI_DOCUMENT.components.schemas) });
  return ajv;
}

/** Every operation of the document, compiled once. */
export function compileOperations(ajv: Ajv2020 = createAjv()): Operation[] {
  const ops: Operation[] = [];
  const paths = OPENAPI_DOCUMENT.paths as unknown as Record<string, Record<string, unknown>>;
  for (const [template, item] of Object.entries(paths)) {
    const shared = (item.parameters ?? []) as Parameter[];
    for (const method of METHODS) {
      const op = item[method] as
        | {
            operationId: string;
            parameters?: Parameter[];
            requestBody?: { required?: boolean; content: Record<string, { schema: unknown }> };
            responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
          }
        | undefined;
      if (!op) continue;
      const params = [...shared, ...(op.parameters ?? [])];
      const compile = (schema: unknown): ValidateFunction => ajv.compile(rerooted(schema) as object);
      const content = op.requestBody?.content ?? {};
      const bodyKind = content['application/json']
        ? 'json'
        : content['application/octet-stream']
          ? 'binary'
          : content[STREAM_TYPE]
            ? 'stream'
            : 'none';
      const responses = new Map<string, Map<string, ValidateFunction | undefined>>();
      for (const [status, r] of Object.entries(op.responses)) {
        const byType = new Map<string, ValidateFunction | undefined>();
        for (const [type, media] of Object.entries(r.content ?? {}))
          byType.set(type, BYTE_TYPES.has(type) ? undefined : compile(media.schema));
        responses.set(status, byType);
      }
      ops.push({
        operationId: op.operationId,
        method,
        template,
        pathParams: params.filter((p) => p.in === 'path').map((p) => ({ name: p.name, validate: compile(p.schema) })),
        query: params
          .filter((p) => p.in === 'query')
          .map((p) => ({ name: p.name, required: p.required === true, validate: compile(p.schema) })),
        bodyKind,
        bodyRequired: op.requestBody?.required === true,
        body: bodyKind === 'json' ? compile(content['application/json']!.schema) : undefined,
        responses,
      });
    }
  }
  return ops;
}

/** The `description` of the document schema an error's schemaPath points into (up to `drop` segments back). */
function documentedDescription(schemaPath: string, drop: number): string | undefined {
  const prefix = `${SCHEMA_ID}#/$defs/`;
  if (!schemaPath.startsWith(prefix)) return undefined;
  const segments = schemaPath
    .slice(prefix.length)
    .split('/')
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
  let node: unknown = OPENAPI_DOCUMENT.components.schemas;
  for (const seg of segments.slice(0, segments.length - drop)) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[seg];
  }
  const d = typeof node === 'object' && node !== null ? (node as { description?: unknown }).description : undefined;
  return typeof d === 'string' ? d : undefined;
}

/** One readable line for the first schema error: where, and what was expected. */
export function describeErrors(where: string, errors: ErrorObject[] | null | undefined): string {
  // A value matching no alternative of an anyOf: ajv lists every branch's errors, then the
  // anyOf. The branch that got deepest into the value says best what is wrong (e.g.
  // egress.allow must be array); if none got past the value itself, the schema's description
  // says what it may be.
  const any = errors?.find((x) => x.keyword === 'anyOf');
  if (any) {
    const branch = errors!
      .filter((x) => x !== any && x.instancePath.startsWith(any.instancePath))
      .reduce<ErrorObject | undefined>(
        (a, x) => (!a || x.instancePath.length > a.instancePath.length ? x : a),
        undefined,
      );
    if (branch && branch.instancePath.length > any.instancePath.length) return describeErrors(where, [branch]);
    const at = `${where}${any.instancePath.replace(/\//g, '.')}`;
    const described = documentedDescription(any.schemaPath, 1);
    return described ? `${at} must be ${described}` : `${at} matches none of the forms the API document allows`;
  }
  const e = errors?.[0];
  if (!e) return `${where} is invalid`;
  const at = `${where}${e.instancePath ? e.instancePath.replace(/\//g, '.') : ''}`;
  switch (e.keyword) {
    case 'additionalProperties':
      return `${at}: unknown field ${JSON.stringify((e.params as { additionalProperty: string }).additionalProperty)}`;
    case 'required':
      return `${at}: missing field ${JSON.stringify((e.params as { missingProperty: string }).missingProperty)}`;
    case 'oneOf':
      return `${at}: give exactly one of the alternatives (e.g. "args" or "cmd")`;
    default:
      return `${at} ${e.message ?? 'is invalid'}`;
  }
}
