// Source of the persistent Python worker, run as `python3 -u -c <source> <capture> <value>`.
// It talks line-JSON with the agent over a private copy of its stdin/stdout; fds 0 and 1 are
// then pointed at /dev/null and stderr, so user code (print to fd 1, input(), os.system) can
// never corrupt the protocol. One request at a time; globals persist in `G` across calls.
export const PYTHON_WORKER_SOURCE = String.raw`
import ast, contextlib, importlib, io, json, os, random, sys, traceback
_proto_in = os.fdopen(os.dup(0), 'r', encoding='utf-8')
_proto_out = os.fdopen(os.dup(1), 'w', encoding='utf-8')
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.close(_null)
os.dup2(2, 1)
MAX_CAPTURE = int(sys.argv[1])
MAX_VALUE = int(sys.argv[2])
ALIASES = {'numpy': 'np', 'pandas': 'pd'}
G = {'__name__': '__main__', '__builtins__': __builtins__}

class Capture(io.TextIOBase):
    def __init__(self):
        self.parts, self.size, self.truncated = [], 0, False
    def writable(self):
        return True
    def write(self, s):
        if self.truncated:
            return len(s)
        b = s.encode('utf-8', 'replace')
        if self.size + len(b) > MAX_CAPTURE:
            b = b[:MAX_CAPTURE - self.size]
            self.truncated = True
        self.parts.append(b.decode('utf-8', 'replace'))
        self.size += len(b)
        return len(s)
    def text(self):
        return ''.join(self.parts)

def run(code):
    tree = ast.parse(code, '<eval>', 'exec')
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, '<eval>', 'exec'), G)
    if last is not None:
        return eval(compile(last, '<eval>', 'eval'), G)
    return None

def encode(value):
    try:
        text = json.dumps(value, allow_nan=False)
    except Exception:
        try:
            text = json.dumps(str(value))
        except Exception:
            text = json.dumps(object.__repr__(value))
    if len(text.encode('utf-8', 'replace')) > MAX_VALUE:
        raise OverflowError('eval value is over %d bytes of JSON; write it to a file instead' % MAX_VALUE)
    return json.loads(text)

def describe(e):
    return {'name': type(e).__name__, 'message': str(e)[:65536], 'stack': traceback.format_exc()[-262144:]}

def do_eval(req):
    out, err = Capture(), Capture()
    value, error = None, None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            value = run(req['code'])
        except BaseException as e:  # SystemExit and KeyboardInterrupt (timeouts) included
            error = describe(e)
    if error is None:
        try:
            value = encode(value)
        except Exception as e:
            value, error = None, describe(e)
    res = {'value': value, 'stdout': out.text(), 'stderr': err.text(), 'truncated': out.truncated or err.truncated}
    if error is not None:
        res['error'] = error
    return res

def do_import(req):
    for name in req['modules']:
        importlib.import_module(name)
        top = name.split('.')[0]
        G[top] = sys.modules[top]
        if top in ALIASES:
            G[ALIASES[top]] = sys.modules[top]
    return {'version': sys.version.split()[0], 'modules': req['modules']}

def do_reseed(req):
    seed = os.urandom(32)
    random.seed(seed)
    np = sys.modules.get('numpy')
    if np is not None:
        np.random.seed(int.from_bytes(seed[:4], 'little'))
    return {}

OPS = {'eval': do_eval, 'import': do_import, 'reseed': do_reseed}

def serve():
    for line in _proto_in:
        rid = None
        try:
            req = json.loads(line)
            rid = req['id']
            reply = {'id': rid, 'ok': True, 'result': OPS[req['op']](req)}
        except BaseException as e:
            if isinstance(e, SystemExit):
                raise
            reply = {'id': rid, 'ok': False, 'error': describe(e)}
        _proto_out.write(json.dumps(reply) + '\n')
        _proto_out.flush()

while True:
    try:
        serve()
        break
    except KeyboardInterrupt:
        continue  # a timeout's SIGINT that landed between two requests
`;
