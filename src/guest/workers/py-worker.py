# The Python eval worker of forkd's guest agent (docs/PROTOCOL.md, "Eval workers").
#
# The native agent starts it as `python3 /usr/lib/forkd/py-worker.py` (no arguments) with
# fd 0 = /dev/null, fds 1 and 2 = the agent's log, fd 3 = protocol-2 frames from the agent and
# fd 4 = frames to it, so user code printing (print, os.system) can never corrupt the protocol.
# One request at a time, in arrival order; globals persist in G across calls. Ops (REQUEST):
#   eval        {code, language?: 'python', timeoutMs?}
#               -> OK {valueJson, stdout, stderr, truncated, error?: {name, message, stack}}
#                  or ERROR timeout (the globals survive) / cancelled (SIGINT)
#   warm.python {pythonPreload: [module names]} -> OK {version, modules: all preloaded so far}
#               or ERROR not_found naming the module
#   reseed      id 0, no reply: reseeds random (and numpy.random when imported)
# The worker owns SIGALRM (eval timeouts) and SIGINT (cancels the request in flight; never
# kills the worker). Plain Python 3 standard library only.
import ast
import codecs
import importlib
import io
import json
import math
import os
import random
import re
import signal
import struct
import sys
import traceback

# Mirrors of src/protocol/limits.ts (the agent passes no arguments; a unit test compares them).
MAX_FRAME_BYTES = 1024 * 1024
MAX_EVAL_CODE_BYTES = 512 * 1024
MAX_EVAL_CAPTURE_BYTES = 256 * 1024
MAX_EVAL_VALUE_BYTES = 256 * 1024
DEFAULT_EVAL_TIMEOUT_MS = 30_000
MAX_EXEC_TIMEOUT_MS = 24 * 60 * 60 * 1000
MAX_ERROR_MESSAGE_CHARS = 4096
# Bounds of an eval error's fields in UTF-8 bytes (the host's are in characters): with the
# capture limits they keep any eval reply under MAX_FRAME_BYTES.
MAX_ERROR_NAME_BYTES = 256
MAX_ERROR_TEXT_BYTES = 64 * 1024
MAX_ERROR_STACK_BYTES = 256 * 1024
MAX_PRELOAD_MODULES = 64
MODULE_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z')
# A timed-out eval that swallows the exception gets it again this often.
TIMEOUT_REPEAT_S = 0.25

IN_FD = 3
OUT_FD = 4
NAME = 'py worker'
ALIASES = {'numpy': 'np', 'pandas': 'pd'}

# ---------------------------------------------------------------- wire codec (src/protocol/wire.ts)

KINDS = {0x01: 'request', 0x02: 'data', 0x03: 'end', 0x10: 'stdout', 0x11: 'stderr', 0x12: 'filedata',
         0x20: 'ok', 0x21: 'error'}
KIND_CODES = {name: code for code, name in KINDS.items()}
RAW_KINDS = frozenset(('data', 'stdout', 'stderr', 'filedata'))
HEADER_BYTES = 9
MAX_VALUE_DEPTH = 4
MAX_SAFE_INTEGER = 2 ** 53 - 1
T_NULL, T_FALSE, T_TRUE, T_INT, T_FLOAT, T_STRING, T_BYTES, T_LIST, T_RECORD = range(9)
_I64 = struct.Struct('<q')
_F64 = struct.Struct('<d')
_U16 = struct.Struct('<H')
_U32 = struct.Struct('<I')


def _replace_unencodable(err):
    # Like JS: each lone surrogate becomes U+FFFD, so every string on the wire is valid UTF-8.
    # (Bytes: the UTF-8 encoder takes only ASCII text from an error handler.)
    return b'\xef\xbf\xbd' * (err.end - err.start), err.end


codecs.register_error('forkd.replace', _replace_unencodable)


class ProtocolError(Exception):
    pass


def cobs_encode(body):
    """COBS-encodes body (no 0x00 in the result) and appends the 0x00 delimiter."""
    out = bytearray()
    view = memoryview(body)
    n = len(body)
    start = 0
    while True:
        zero = body.find(0, start)
        end = n if zero == -1 else zero
        at = start
        while end - at >= 254:
            out.append(0xff)
            out += view[at:at + 254]
            at += 254
        out.append(end - at + 1)
        out += view[at:end]
        if zero == -1:
            break
        start = zero + 1
    out.append(0)
    return bytes(out)


def cobs_decode(frame):
    """Decodes one COBS frame (delimiter excluded); ProtocolError on a 0x00 or a cut block."""
    if frame.find(0) != -1:
        raise ProtocolError('frame: 0x00 inside a COBS frame')
    out = bytearray()
    n = len(frame)
    r = 0
    while r < n:
        code = frame[r]
        r += 1
        end = r + code - 1
        if end > n:
            raise ProtocolError('frame: truncated COBS block')
        out += frame[r:end]
        r = end
        if code != 0xff and r < n:
            out.append(0)
    return bytes(out)


class _Reader:
    __slots__ = ('buf', 'at')

    def __init__(self, buf, at):
        self.buf = buf
        self.at = at

    def need(self, n, what):
        left = len(self.buf) - self.at
        if left < n:
            raise ProtocolError('%s: needs %d bytes, %d left in the frame' % (what, n, left))

    def u8(self, what):
        self.need(1, what)
        v = self.buf[self.at]
        self.at += 1
        return v

    def unpack(self, st, what):
        self.need(st.size, what)
        v = st.unpack_from(self.buf, self.at)[0]
        self.at += st.size
        return v

    def take(self, n, what):
        self.need(n, what)
        s = self.buf[self.at:self.at + n]
        self.at += n
        return s


def _read_value(r, depth, path):
    tag = r.u8(path)
    if tag == T_NULL:
        return None
    if tag == T_FALSE:
        return False
    if tag == T_TRUE:
        return True
    if tag == T_INT:
        v = r.unpack(_I64, path)
        if v > MAX_SAFE_INTEGER or v < -MAX_SAFE_INTEGER:
            raise ProtocolError('%s: integer %d is beyond 2^53' % (path, v))
        return v
    if tag == T_FLOAT:
        v = r.unpack(_F64, path)
        if not math.isfinite(v):
            raise ProtocolError('%s: float is not finite' % path)
        return v
    if tag == T_STRING:
        return r.take(r.unpack(_U32, path), path).decode('utf-8', 'replace')
    if tag == T_BYTES:
        return r.take(r.unpack(_U32, path), path)
    if tag == T_LIST:
        if depth >= MAX_VALUE_DEPTH:
            raise ProtocolError('%s: nested deeper than %d' % (path, MAX_VALUE_DEPTH))
        count = r.unpack(_U32, path)
        # Every value takes at least one byte: a count beyond what is left is a lie.
        r.need(count, '%s (%d items)' % (path, count))
        return [_read_value(r, depth + 1, '%s[%d]' % (path, i)) for i in range(count)]
    if tag == T_RECORD:
        if depth >= MAX_VALUE_DEPTH:
            raise ProtocolError('%s: nested deeper than %d' % (path, MAX_VALUE_DEPTH))
        return _read_record(r, depth + 1, path)
    raise ProtocolError('%s: unknown value type 0x%x' % (path, tag))


def _read_record(r, depth, path):
    count = r.unpack(_U16, path)
    r.need(count * 3, '%s (%d fields)' % (path, count))  # key length, key byte, value tag
    out = {}
    for _ in range(count):
        key_len = r.u8(path)
        if key_len == 0:
            raise ProtocolError('%s: empty key' % path)
        key = r.take(key_len, path).decode('utf-8', 'replace')
        if key in out:
            raise ProtocolError('%s: duplicate key %s' % (path, json.dumps(key)))
        out[key] = _read_value(r, depth, path + '.' + key)
    return out


def decode_frame(encoded):
    """(kind, id, payload) of one frame (COBS bytes, delimiter excluded); payload: bytes or dict."""
    body = cobs_decode(encoded)
    if len(body) < HEADER_BYTES:
        raise ProtocolError('frame: %d bytes is shorter than its %d-byte header' % (len(body), HEADER_BYTES))
    kind = KINDS.get(body[0])
    if kind is None:
        raise ProtocolError('frame: unknown kind 0x%x' % body[0])
    rid = int.from_bytes(body[1:HEADER_BYTES], 'little')
    if rid > MAX_SAFE_INTEGER:
        raise ProtocolError('frame.id: beyond 2^53')
    if kind in RAW_KINDS:
        return kind, rid, body[HEADER_BYTES:]
    r = _Reader(body, HEADER_BYTES)
    payload = _read_record(r, 1, kind)
    if r.at != len(body):
        raise ProtocolError('frame: %d bytes after the record' % (len(body) - r.at))
    return kind, rid, payload


def _write_value(out, v, depth, path):
    if v is None:
        out.append(T_NULL)
    elif v is False:
        out.append(T_FALSE)
    elif v is True:
        out.append(T_TRUE)
    elif isinstance(v, int):
        if v > MAX_SAFE_INTEGER or v < -MAX_SAFE_INTEGER:
            raise ProtocolError('%s: integer %d is beyond 2^53' % (path, v))
        out.append(T_INT)
        out += _I64.pack(v)
    elif isinstance(v, float):
        if not math.isfinite(v):
            raise ProtocolError('%s: %r is not a finite number' % (path, v))
        out.append(T_FLOAT)
        out += _F64.pack(v)
    elif isinstance(v, str):
        b = v.encode('utf-8', 'forkd.replace')
        out.append(T_STRING)
        out += _U32.pack(len(b))
        out += b
    elif isinstance(v, (bytes, bytearray, memoryview)):
        out.append(T_BYTES)
        out += _U32.pack(len(v))
        out += v
    elif depth >= MAX_VALUE_DEPTH:
        raise ProtocolError('%s: nested deeper than %d' % (path, MAX_VALUE_DEPTH))
    elif isinstance(v, (list, tuple)):
        out.append(T_LIST)
        out += _U32.pack(len(v))
        for i, item in enumerate(v):
            _write_value(out, item, depth + 1, '%s[%d]' % (path, i))
    elif isinstance(v, dict):
        out.append(T_RECORD)
        _write_record(out, v, depth + 1, path)
    else:
        raise ProtocolError('%s: %s cannot be encoded' % (path, type(v).__name__))


def _write_record(out, rec, depth, path):
    if len(rec) > 0xffff:
        raise ProtocolError('%s: more than 65535 fields' % path)
    out += _U16.pack(len(rec))
    for key, v in rec.items():
        kb = key.encode('utf-8', 'forkd.replace')
        if not 1 <= len(kb) <= 255:
            raise ProtocolError('%s: key of %d bytes (1..255)' % (path, len(kb)))
        out.append(len(kb))
        out += kb
        _write_value(out, v, depth, path + '.' + key)


def encode_frame(kind, rid, payload):
    """A whole frame, delimiter included. payload: bytes (raw kinds) or a dict (a record)."""
    body = bytearray((KIND_CODES[kind],))
    body += rid.to_bytes(8, 'little')
    if isinstance(payload, (bytes, bytearray, memoryview)):
        body += payload
    else:
        _write_record(body, payload, 1, kind)
    return cobs_encode(body)


def frame_id_of(encoded):
    """The id of a frame that may not decode (or of its first bytes); 0 when unreadable."""
    head = bytearray()
    n = len(encoded)
    r = 0
    while r < n and len(head) < HEADER_BYTES:
        code = encoded[r]
        r += 1
        if code == 0:
            break
        end = min(r + code - 1, n)
        take = min(end - r, HEADER_BYTES - len(head))
        head += encoded[r:r + take]
        r += take
        if r < end:
            break
        if code != 0xff and r < n:
            head.append(0)
    if len(head) < HEADER_BYTES:
        return 0
    rid = int.from_bytes(head[1:HEADER_BYTES], 'little')
    return rid if rid <= MAX_SAFE_INTEGER else 0


class FrameSplitter:
    """src/protocol/lines.ts: 0x00-delimited frames, never buffering more than max_bytes of one."""

    HEAD_BYTES = 64

    def __init__(self, max_bytes, on_frame, on_oversized):
        self.max_bytes = max_bytes
        self.on_frame = on_frame
        self.on_oversized = on_oversized
        self.parts = []
        self.size = 0
        self.skipping = None  # [bytes, head] of a frame over the limit

    def push(self, chunk):
        start = 0
        while True:
            zero = chunk.find(0, start)
            self._take(chunk[start:len(chunk) if zero == -1 else zero])
            if zero == -1:
                return
            self._end()
            start = zero + 1

    def _take(self, piece):
        if not piece:
            return
        if self.skipping is not None:
            self.skipping[0] += len(piece)
            return
        if self.size + len(piece) <= self.max_bytes:
            self.parts.append(piece)
            self.size += len(piece)
            return
        head = b''.join(self.parts + [piece[:self.HEAD_BYTES]])[:self.HEAD_BYTES]
        self.skipping = [self.size + len(piece), head]
        self.parts = []
        self.size = 0

    def _end(self):
        if self.skipping is not None:
            size, head = self.skipping
            self.skipping = None
            self.on_oversized(size, head)
            return
        frame = b''.join(self.parts)
        self.parts = []
        self.size = 0
        if frame:  # empty frames are legal padding
            self.on_frame(frame)


# ---------------------------------------------------------------- eval

_user_main = type(sys)('__main__')
# The user's namespace, persistent across calls. It becomes sys.modules['__main__'] when the
# worker runs, so classes and functions defined in it pickle like a script's.
G = _user_main.__dict__
G['__builtins__'] = __builtins__
PRELOADED = []


class WorkerError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class ResultTooLarge(Exception):
    pass


class EvalTimeout(BaseException):
    pass


class EvalCancelled(BaseException):
    pass


def cut_utf8(text, max_bytes, tail=False):
    """text cut to at most max_bytes of UTF-8 at a character boundary (its end if tail)."""
    if len(text) * 4 <= max_bytes:
        return text
    b = text.encode('utf-8', 'forkd.replace')
    if len(b) <= max_bytes:
        return text
    if tail:
        return b[-max_bytes:].decode('utf-8', 'ignore')
    return b[:max_bytes].decode('utf-8', 'ignore')


class Capture(io.TextIOBase):
    """sys.stdout / sys.stderr of one call: at most MAX_EVAL_CAPTURE_BYTES, then `truncated`."""

    encoding = 'utf-8'

    def __init__(self):
        self.parts, self.size, self.truncated = [], 0, False

    def writable(self):
        return True

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError('write() argument must be str, not %s' % type(s).__name__)
        if self.truncated:
            return len(s)
        b = s.encode('utf-8', 'forkd.replace')
        if self.size + len(b) > MAX_EVAL_CAPTURE_BYTES:
            b = b[:MAX_EVAL_CAPTURE_BYTES - self.size]
            self.truncated = True
        # A character cut at the limit becomes U+FFFD, which is honest about the cut.
        self.parts.append(b.decode('utf-8', 'replace'))
        self.size += len(b)
        return len(s)

    def text(self):
        return ''.join(self.parts)


# True while a request's code runs: SIGALRM and SIGINT then raise in it (see _guarded).
_armed = False


def _interrupt(exc, frame):
    # Never in _guarded's own frame: it is the one place that disarms, so a late signal cannot
    # raise past it into the serving loop.
    if _armed and frame is not None and frame.f_code is not _guarded.__code__:
        raise exc()


def _on_alarm(signum, frame):
    _interrupt(EvalTimeout, frame)


def _on_sigint(signum, frame):
    _interrupt(EvalCancelled, frame)


def _guarded(fn, arg, seconds):
    """fn(arg) with SIGINT (and a timer if seconds) armed: (result, None) or (None, 'timeout' | 'cancelled')."""
    global _armed
    _install_handlers()
    result = None
    stop = None
    _armed = True
    if seconds:
        signal.setitimer(signal.ITIMER_REAL, seconds, TIMEOUT_REPEAT_S)
    try:
        result = fn(arg)
    except EvalTimeout:
        stop = 'timeout'
    except EvalCancelled:
        stop = 'cancelled'
    _armed = False
    if seconds:
        signal.setitimer(signal.ITIMER_REAL, 0)
    # User code may have replaced them; a default SIGINT handler left in place would raise
    # KeyboardInterrupt anywhere in the serving loop.
    _install_handlers()
    return result, stop


def _install_handlers():
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGINT, _on_sigint)


def run(code):
    tree = ast.parse(code, '<eval>', 'exec')
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, '<eval>', 'exec'), G)
    if last is not None:
        return eval(compile(last, '<eval>', 'eval'), G)
    return None


def _dumps(value):
    return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(',', ':'))


def value_json(value):
    """The value's JSON text: JSON-serializable -> as is, anything else -> str(value) as JSON."""
    try:
        text = _dumps(value)
    except Exception:
        try:
            s = str(value)
        except Exception:
            s = object.__repr__(value)
        text = _dumps(s)
    try:
        size = len(text.encode('utf-8'))
    except UnicodeEncodeError:  # lone surrogates: escaped, as JSON.stringify does
        text = json.dumps(json.loads(text), ensure_ascii=True, separators=(',', ':'))
        size = len(text)
    if size > MAX_EVAL_VALUE_BYTES:
        raise ResultTooLarge('eval value is %d bytes of JSON, over the %d-byte limit; write it to a file instead'
                             % (size, MAX_EVAL_VALUE_BYTES))
    return text


def describe(e):
    try:
        message = str(e)
    except Exception:
        message = '<unprintable %s>' % type(e).__name__
    tb = e.__traceback__
    if isinstance(e, SyntaxError):
        tb = None  # the caret under the code says it all; the parser's frames do not
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next  # the worker's own frames
    try:
        stack = ''.join(traceback.format_exception(type(e), e, tb))
    except Exception:
        stack = '%s: %s\n' % (type(e).__name__, message)
    return {
        'name': cut_utf8(type(e).__name__, MAX_ERROR_NAME_BYTES),
        'message': cut_utf8(message, MAX_ERROR_TEXT_BYTES),
        'stack': cut_utf8(stack, MAX_ERROR_STACK_BYTES, tail=True),
    }


def _attempt_eval(code):
    try:
        return value_json(run(code)), None
    except (EvalTimeout, EvalCancelled):
        raise
    except BaseException as e:  # SystemExit and KeyboardInterrupt included: reported, not obeyed
        return 'null', describe(e)


def do_eval(params, rid):
    code = params.get('code')
    if not isinstance(code, str):
        raise WorkerError('bad_request', '%s: eval.code must be a string' % NAME)
    if len(code) > MAX_EVAL_CODE_BYTES // 4 and len(code.encode('utf-8', 'forkd.replace')) > MAX_EVAL_CODE_BYTES:
        raise WorkerError('too_large', '%s: eval.code is over %d bytes' % (NAME, MAX_EVAL_CODE_BYTES))
    language = params.get('language')
    if language is not None and language != 'python':
        raise WorkerError('bad_request', '%s: eval.language %s: this worker runs python' % (NAME, json.dumps(language)))
    timeout_ms = params.get('timeoutMs')
    if timeout_ms is None:
        timeout_ms = DEFAULT_EVAL_TIMEOUT_MS
    elif type(timeout_ms) is not int or not 1 <= timeout_ms <= MAX_EXEC_TIMEOUT_MS:
        raise WorkerError('bad_request', '%s: eval.timeoutMs must be an integer in 1..%d' % (NAME, MAX_EXEC_TIMEOUT_MS))
    out, err = Capture(), Capture()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        result, stop = _guarded(_attempt_eval, code, timeout_ms / 1000)
    finally:
        sys.stdout, sys.stderr = saved
    if stop == 'timeout':
        raise WorkerError('timeout', 'python eval ran over %d ms; interrupted (globals kept)' % timeout_ms)
    if stop == 'cancelled':
        raise WorkerError('cancelled', 'python eval cancelled (SIGINT)')
    text, error = result
    reply = {'valueJson': text, 'stdout': out.text(), 'stderr': err.text(), 'truncated': out.truncated or err.truncated}
    if error is not None:
        reply['error'] = error
    return reply


def _attempt_import(name):
    try:
        importlib.import_module(name)
    except (EvalTimeout, EvalCancelled):
        raise
    except ImportError as e:
        return WorkerError('not_found', 'python cannot import %s: %s: %s' % (name, type(e).__name__, e))
    except BaseException as e:
        return WorkerError('internal', 'python import of %s raised %s: %s' % (name, type(e).__name__, e))
    top = name.split('.')[0]
    G[top] = sys.modules[top]
    if top in ALIASES:
        G[ALIASES[top]] = sys.modules[top]
    return None


def do_warm_python(params, rid):
    names = params.get('pythonPreload')
    if (not isinstance(names, list) or len(names) > MAX_PRELOAD_MODULES
            or not all(isinstance(n, str) and len(n) <= 128 and MODULE_NAME.match(n) for n in names)):
        raise WorkerError('bad_request', '%s: warm.python.pythonPreload must be a list of at most %d module names'
                          % (NAME, MAX_PRELOAD_MODULES))
    for name in names:
        failure, stop = _guarded(_attempt_import, name, 0)
        if stop is not None:
            raise WorkerError(stop, 'python import of %s cancelled (SIGINT)' % name)
        if failure is not None:
            raise failure
        if name not in PRELOADED:  # remembered only once imported
            PRELOADED.append(name)
    return {'version': sys.version.split()[0], 'modules': list(PRELOADED)}


def do_reseed(params, rid):
    seed = os.urandom(32)
    random.seed(seed)
    np = sys.modules.get('numpy')
    if np is not None:
        try:
            np.random.seed([int.from_bytes(seed[i:i + 4], 'little') for i in range(0, 32, 4)])
        except Exception as e:
            log('numpy.random reseed failed: %s: %s' % (type(e).__name__, e))
    tempfile = sys.modules.get('tempfile')
    if tempfile is not None:
        tempfile._name_sequence = None  # its generator is recreated on a pid change only
    return None if rid == 0 else {}


OPS = {'eval': do_eval, 'warm.python': do_warm_python, 'reseed': do_reseed}


# ---------------------------------------------------------------- serving

def log(line):
    try:
        sys.__stderr__.write('%s: %s\n' % (NAME, line))
        sys.__stderr__.flush()
    except Exception:
        pass


def send(rid, kind, payload):
    try:
        frame = encode_frame(kind, rid, payload)
    except ProtocolError as e:
        frame = encode_frame('error', rid, {'code': 'internal', 'message': '%s: reply not encodable: %s' % (NAME, e)})
    if len(frame) - 1 > MAX_FRAME_BYTES:
        frame = encode_frame('error', rid, {
            'code': 'too_large',
            'message': '%s: reply of %d bytes is over the %d-byte frame limit' % (NAME, len(frame) - 1, MAX_FRAME_BYTES),
        })
    view = memoryview(frame)
    while view:
        view = view[os.write(OUT_FD, view):]


def send_error(rid, code, message):
    send(rid, 'error', {'code': code, 'message': message[:MAX_ERROR_MESSAGE_CHARS]})


def handle_frame(encoded):
    try:
        kind, rid, payload = decode_frame(encoded)
    except Exception as e:  # ProtocolError; anything else would be a codec bug, still not fatal
        return send_error(frame_id_of(encoded), 'bad_request', '%s: %s' % (NAME, e))
    if kind != 'request':
        return send_error(rid, 'bad_request', '%s: unexpected %s frame' % (NAME, kind.upper()))
    op = payload.get('op')
    if not isinstance(op, str):
        return send_error(rid, 'bad_request', '%s: request without a string op' % NAME)
    handler = OPS.get(op)
    if handler is None:
        return send_error(rid, 'unknown_op', '%s: unknown op %s' % (NAME, json.dumps(op[:64])))
    try:
        result = handler(payload, rid)
    except WorkerError as e:
        return send_error(rid, e.code, e.message)
    except Exception as e:
        log('%s failed: %s' % (op, traceback.format_exc()))
        return send_error(rid, 'internal', '%s: %s failed: %s: %s' % (NAME, op, type(e).__name__, e))
    if result is not None:
        send(rid, 'ok', result)


def handle_oversized(size, head):
    send_error(frame_id_of(head), 'too_large',
               '%s: frame of %d bytes is over the %d-byte limit' % (NAME, size, MAX_FRAME_BYTES))


def serve():
    splitter = FrameSplitter(MAX_FRAME_BYTES, handle_frame, handle_oversized)
    while True:
        try:
            chunk = os.read(IN_FD, 1 << 16)
        except KeyboardInterrupt:  # only if user code put the default SIGINT handler back
            continue
        if not chunk:
            return
        splitter.push(chunk)


def main():
    try:
        # Subprocesses of user code must not hold (or write to) the protocol pipes.
        os.set_inheritable(IN_FD, False)
        os.set_inheritable(OUT_FD, False)
    except OSError as e:
        log('fds %d and %d must be the protocol pipes: %s' % (IN_FD, OUT_FD, e))
        sys.exit(2)
    sys.modules['__main__'] = _user_main
    try:
        sys.stdout.reconfigure(line_buffering=True)  # the log: output of user threads shows up promptly
    except Exception:
        pass
    _install_handlers()
    try:
        serve()
    except BrokenPipeError:
        pass  # the agent went away


if __name__ == '__main__':
    main()
