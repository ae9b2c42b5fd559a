/*
 * forkd-agent: the guest agent of docs/PROTOCOL.md (version 3), native and static, so a
 * restored child pays for no interpreter (under TCG every instruction is translated afresh in
 * every child). One thread, one poll() loop over non-blocking fds; memory bounded by the
 * protocol limits whatever the host or a child sends.
 *
 *   forkd-agent [--device PATH | --listen PATH] [--hostname-file PATH] [--identity-log PATH]
 *               [--node PATH] [--js-worker PATH] [--python PATH] [--py-worker PATH] [--verbose]
 *
 * Default transport: the virtio-serial port org.forkd.agent, found in /sys/class/virtio-ports.
 * --listen serves a Unix socket instead (host-side tests); --identity-log records entropy and
 * clock changes in a file instead of making them (tests must not set the host clock).
 *
 * Build (every .c of src/guest/native, as src/image/guest-helper.ts does):
 *   gcc -static -Os -Wall -Wextra -Werror -s -DFORKD_VERSION='"0.1.0"' -o forkd-agent *.c
 */
#include "agent.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char g_msg[1024];
static const char *opt_listen, *opt_device, *opt_hostname_file, *opt_identity_log;
static int64_t g_started_ns;
static char *g_sandbox_id;
static int g_sigfd = -1, g_listen = -1;
struct conn *g_conns;
static struct conn *g_port;
static int64_t g_port_check_ms;
#define PORT_RECHECK_MS 200 /* fallback while the host is away; SIGIO is the fast path */

/* ---------------------------------------------------------------- small helpers */

int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
int64_t now_ms(void) { return now_ns() / 1000000; }

void logmsg(const char *fmt, ...) {
  char line[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  fprintf(stderr, "forkd-agent: %s\n", line);
}

/* Routine events (host connected, identity applied): only with --verbose. stderr is the serial
 * console, and under TCG every console line costs a child thousands of freshly translated
 * blocks of tty and 8250 driver code (measured: a line per identity was ~1/4 of its cost). */
static bool g_verbose;
void debugmsg(const char *fmt, ...) {
  if (!g_verbose) return;
  char line[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  fprintf(stderr, "forkd-agent: %s\n", line);
}

const char *fail(const char *code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_msg, sizeof(g_msg), fmt, ap);
  va_end(ap);
  return code;
}

const char *errno_code(int e) {
  switch (e) {
  case ENOENT: return "not_found";
  case EEXIST: case ENOTEMPTY: return "exists";
  case EACCES: case EPERM: case EROFS: return "permission_denied";
  case EISDIR: case ENOTDIR: case EINVAL: case ENAMETOOLONG: return "bad_request";
  case EFBIG: return "too_large";
  default: return "io_error";
  }
}

/* ---------------------------------------------------------------- output frames */

void send_raw(struct conn *c, uint8_t kind, uint64_t id, const uint8_t *d, size_t n) {
  uint8_t h[9] = { kind };
  if (!c || c->dead || !c->up) return; /* a gone host's output is dropped */
  for (int i = 0; i < 8; i++) h[1 + i] = (uint8_t)(id >> (8 * i));
  if (!cobs_append(&c->out, h, 9, d, n)) logmsg("out of memory queueing a frame; dropped");
}

void send_w(struct conn *c, struct w *w) {
  uint64_t id = 0;
  for (int i = 7; i >= 0; i--) id = id << 8 | w->p[1 + i];
  if (!w_end(w)) {
    send_error(c, id, "internal", "reply does not fit in a frame");
    return;
  }
  if (c && !c->dead && c->up && !cobs_append(&c->out, w->p, w->len, NULL, 0)) logmsg("out of memory; reply dropped");
}

void send_error(struct conn *c, uint64_t id, const char *code, const char *msg) {
  struct w *w = w_begin(K_ERROR, id);
  size_t n = strlen(msg);
  w_str(w, "code", code);
  w_strn(w, "message", msg, n > MAX_ERROR_MESSAGE_CHARS ? MAX_ERROR_MESSAGE_CHARS : n);
  if (strcmp(code, "internal") == 0) logmsg("request %llu failed: %s", (unsigned long long)id, msg);
  send_w(c, w);
}

/* ---------------------------------------------------------------- requests */

struct req *req_new(struct conn *c, uint64_t id, enum op op) {
  struct req *r = calloc(1, sizeof(*r));
  if (!r) return NULL;
  r->conn = c;
  r->id = id;
  r->op = op;
  r->fd = -1;
  c->reqs[c->nreqs++] = r;
  return r;
}

static struct req *find_req(struct conn *c, uint64_t id) {
  for (int i = 0; i < c->nreqs; i++)
    if (c->reqs[i]->id == id) return c->reqs[i];
  return NULL;
}

/* Frees the request and what it holds (a cancelled exec's process group is killed). */
void req_end(struct req *r) {
  struct conn *c = r->conn;
  if (r->op == OP_READ || r->op == OP_WRITE) files_req_end(r);
  else exec_req_end(r);
  for (int i = 0; i < c->nreqs; i++)
    if (c->reqs[i] == r) {
      c->reqs[i] = c->reqs[--c->nreqs];
      break;
    }
  free(r);
}

void req_fail(struct req *r, const char *code, const char *msg) {
  send_error(r->conn, r->id, code, msg);
  req_end(r);
}

/* An error about a frame: fails the request it names if that one is running, else replies. */
static void frame_error(struct conn *c, uint64_t id, const char *code, const char *msg) {
  struct req *r = id ? find_req(c, id) : NULL;
  if (r) req_fail(r, code, msg);
  else send_error(c, id, code, msg);
}

/* ---------------------------------------------------------------- parameters */

int p_str(const uint8_t *rec, const char *key, struct val *v) {
  if (!rec_get(rec, key, v) || v->t == T_NULL) return 0;
  return v->t == T_STRING ? 1 : -1;
}

int p_int(const uint8_t *rec, const char *key, int64_t min, int64_t max, int64_t *out) {
  struct val v;
  if (!rec_get(rec, key, &v) || v.t == T_NULL) return 0;
  if (v.t != T_INT || v.i < min || v.i > max) return -1;
  *out = v.i;
  return 1;
}

int p_bool(const uint8_t *rec, const char *key, bool *out) {
  struct val v;
  if (!rec_get(rec, key, &v) || v.t == T_NULL) return 0;
  if (v.t != T_TRUE && v.t != T_FALSE) return -1;
  *out = v.t == T_TRUE;
  return 1;
}

char *cstr(const struct val *v) {
  if (memchr(v->p, 0, v->n)) return NULL;
  char *s = malloc(v->n + 1);
  if (!s) return NULL;
  memcpy(s, v->p, v->n);
  s[v->n] = 0;
  return s;
}

const char *p_path(const uint8_t *rec, const char *op, char out[MAX_PATH_BYTES + 1]) {
  return p_path_key(rec, op, "path", out);
}

const char *p_path_key(const uint8_t *rec, const char *op, const char *key, char out[MAX_PATH_BYTES + 1]) {
  struct val v;
  if (p_str(rec, key, &v) != 1) return fail("bad_request", "%s: `%s` must be a string", op, key);
  if (v.n < 1 || v.n > MAX_PATH_BYTES || v.p[0] != '/' || memchr(v.p, 0, v.n))
    return fail("bad_request", "%s: `%s` must be an absolute path of at most %d bytes", op, key, MAX_PATH_BYTES);
  memcpy(out, v.p, v.n);
  out[v.n] = 0;
  return NULL;
}

/* ---------------------------------------------------------------- hello, ping, identity, warm */

static double ms_since_start(void) { return (double)(now_ns() - g_started_ns) / 1e6; }

static bool charset_ok(const struct val *v, size_t max, bool hostname) {
  if (v->n < 1 || v->n > max) return false;
  for (uint32_t i = 0; i < v->n; i++) {
    uint8_t ch = v->p[i];
    bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
    if (!hostname) {
      if (!alnum && ch != '_' && ch != '.' && ch != '-') return false;
      continue;
    }
    /* RFC 1123 labels: alphanumeric at both ends, '-' inside, '.' between labels. */
    bool first = i == 0 || v->p[i - 1] == '.', last = i + 1 == v->n || v->p[i + 1] == '.';
    if (ch == '.' ? (first || last) : ch == '-' ? (first || last) : !alnum) return false;
  }
  return true;
}

static const char *append_line(const char *path, const char *line) {
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return fail("internal", "identity: open %s: %s", path, strerror(errno));
  ssize_t k = write(fd, line, strlen(line));
  int e = errno;
  close(fd);
  if (k != (ssize_t)strlen(line)) return fail("internal", "identity: write %s: %s", path, strerror(e));
  return NULL;
}

/* Entropy first (RNDADDENTROPY credits it, RNDRESEEDCRNG makes the CRNG use it at once: without
 * it, Linux 6.1 children of one snapshot keep the same per-cpu CRNG state), then the clock. */
static const char *apply_entropy(const struct val *e) {
  static struct { struct rand_pool_info info; uint8_t buf[MAX_IDENTITY_ENTROPY_BYTES]; } req;
  if (opt_identity_log) {
    static char line[2 * MAX_IDENTITY_ENTROPY_BYTES + 16];
    memcpy(line, "entropy ", 8);
    hex(e->p, e->n, line + 8);
    strcat(line, "\n");
    return append_line(opt_identity_log, line);
  }
  int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail("internal", "identity: open /dev/urandom: %s", strerror(errno));
  memcpy(req.buf, e->p, e->n);
  req.info.entropy_count = (int)e->n * 8;
  req.info.buf_size = (int)e->n;
  const char *what = NULL;
  if (ioctl(fd, RNDADDENTROPY, &req.info) != 0) what = "ioctl RNDADDENTROPY";
  else if (ioctl(fd, RNDRESEEDCRNG) != 0) what = "ioctl RNDRESEEDCRNG";
  int err = errno;
  close(fd);
  memset(req.buf, 0, sizeof(req.buf));
  return what ? fail("internal", "identity: %s: %s", what, strerror(err)) : NULL;
}

static const char *apply_clock(int64_t ms) {
  if (opt_identity_log) {
    char line[64];
    snprintf(line, sizeof(line), "settime %lld\n", (long long)ms);
    return append_line(opt_identity_log, line);
  }
  struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L };
  if (clock_settime(CLOCK_REALTIME, &ts) != 0) return fail("internal", "identity: clock_settime: %s", strerror(errno));
  return NULL;
}

static const char *apply_hostname(const struct val *h) {
  if (!opt_hostname_file) {
    if (sethostname((const char *)h->p, h->n) != 0)
      return fail(errno_code(errno), "identity: sethostname: %s", strerror(errno));
    return NULL;
  }
  int fd = open(opt_hostname_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, h->p, h->n) != (ssize_t)h->n) {
    int e = errno;
    if (fd >= 0) close(fd);
    return fail(errno_code(e), "identity: writing hostname to %s: %s", opt_hostname_file, strerror(e));
  }
  close(fd);
  return NULL;
}

static const char *op_identity(struct conn *c, uint64_t id, const uint8_t *rec) {
  struct val sid, host, ent;
  int64_t wall;
  if (p_str(rec, "sandboxId", &sid) != 1 || !charset_ok(&sid, 128, false))
    return fail("bad_request", "identity: `sandboxId` must be 1..128 of [A-Za-z0-9_.-]");
  if (p_str(rec, "hostname", &host) != 1 || !charset_ok(&host, 64, true))
    return fail("bad_request", "identity: `hostname` must be an RFC 1123 name of at most 64 bytes");
  if (!rec_get(rec, "entropy", &ent) || ent.t != T_BYTES || ent.n < MIN_IDENTITY_ENTROPY_BYTES ||
      ent.n > MAX_IDENTITY_ENTROPY_BYTES)
    return fail("bad_request", "identity: `entropy` must be %d..%d bytes", MIN_IDENTITY_ENTROPY_BYTES,
                MAX_IDENTITY_ENTROPY_BYTES);
  if (p_int(rec, "wallClockMs", 0, INT64_MAX, &wall) != 1)
    return fail("bad_request", "identity: `wallClockMs` must be a non-negative integer");
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  double before = (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
  const char *err = apply_entropy(&ent);
  if (!err) err = apply_clock(wall);
  if (!err) err = apply_hostname(&host);
  if (err) return err;
  free(g_sandbox_id);
  g_sandbox_id = cstr(&sid);
  reseed_workers();
  struct w *w = w_begin(K_OK, id);
  w_strn(w, "sandboxId", sid.p, sid.n);
  w_strn(w, "hostname", host.p, host.n);
  w_float(w, "clockStepMs", before - (double)wall);
  send_w(c, w);
  debugmsg("identity %s, clock stepped %.0f ms", g_sandbox_id ? g_sandbox_id : "?", before - (double)wall);
  return NULL;
}

static const char *op_warm(struct conn *c, uint64_t id, const uint8_t *rec) {
  bool js = true, js_up, py_up;
  struct val pre;
  if (p_bool(rec, "js", &js) < 0) return fail("bad_request", "warm: `js` must be a bool");
  bool has_pre = rec_get(rec, "pythonPreload", &pre) && pre.t != T_NULL;
  if (has_pre && pre.t != T_LIST) return fail("bad_request", "warm: `pythonPreload` must be a list");
  warm_workers(js, has_pre, &js_up, &py_up);
  struct w *w = w_begin(K_OK, id);
  w_bool(w, "js", js_up);
  w_bool(w, "python", py_up);
  send_w(c, w);
  return NULL;
}

static void op_cancel(struct conn *c, uint64_t id, const uint8_t *rec) {
  int64_t target;
  if (p_int(rec, "target", 0, INT64_MAX, &target) != 1) {
    send_error(c, id, "bad_request", "cancel: `target` must be a request id");
    return;
  }
  struct req *victim = find_req(c, (uint64_t)target);
  struct w *w = w_begin(K_OK, id);
  w_bool(w, "cancelled", victim != NULL);
  send_w(c, w);
  if (victim) {
    snprintf(g_msg, sizeof(g_msg), "request %lld cancelled by the host", (long long)target);
    req_fail(victim, "cancelled", g_msg);
  }
}

/* ---------------------------------------------------------------- dispatch */

static const char *const OPS[] = { "hello", "ping", "identity", "exec", "kill", "wait", "cancel", "eval", "warm",
                                   "warm.python", "files.read", "files.write", "files.list", "files.stat",
                                   "files.remove", "files.mkdir", "files.rename", "input", "input.close", "resize" };

static void on_request(struct conn *c, uint64_t id, const uint8_t *rec, const uint8_t *body, size_t n) {
  struct val v;
  char op[65];
  if (id == 0) return send_error(c, 0, "bad_request", "request id 0 is reserved for notices");
  if (p_str(rec, "op", &v) != 1) return send_error(c, id, "bad_request", "request: `op` must be a string");
  size_t k = 0;
  for (; k < v.n && k < 64; k++) op[k] = v.p[k] >= 0x20 && v.p[k] < 0x7f ? (char)v.p[k] : '?';
  op[k] = 0;
  size_t i = 0;
  while (i < sizeof(OPS) / sizeof(OPS[0]) && (strlen(OPS[i]) != v.n || memcmp(OPS[i], v.p, v.n) != 0)) i++;
  if (i == sizeof(OPS) / sizeof(OPS[0])) {
    snprintf(g_msg, sizeof(g_msg), "unknown op \"%s\"", op);
    return send_error(c, id, "unknown_op", g_msg);
  }
  if (find_req(c, id)) {
    snprintf(g_msg, sizeof(g_msg), "request id %llu is already in flight", (unsigned long long)id);
    return send_error(c, id, "bad_request", g_msg);
  }
  if (strcmp(op, "cancel") == 0) return op_cancel(c, id, rec);
  if (c->nreqs >= MAX_CONCURRENT_REQUESTS) {
    snprintf(g_msg, sizeof(g_msg), "%d requests already in flight on this connection", MAX_CONCURRENT_REQUESTS);
    return send_error(c, id, "busy", g_msg);
  }
  const char *err = NULL;
  if (strcmp(op, "hello") == 0 || strcmp(op, "ping") == 0) {
    struct w *w = w_begin(K_OK, id);
    if (op[0] == 'h') w_int(w, "protocolVersion", AGENT_PROTOCOL_VERSION);
    else w_float(w, "uptimeMs", ms_since_start());
    w_str(w, "agentVersion", FORKD_VERSION);
    if (op[0] == 'p') {
      if (g_sandbox_id) w_str(w, "sandboxId", g_sandbox_id);
      else w_null(w, "sandboxId");
    }
    send_w(c, w);
  } else if (strcmp(op, "identity") == 0) err = op_identity(c, id, rec);
  else if (strcmp(op, "exec") == 0) err = op_exec(c, id, rec);
  else if (strcmp(op, "kill") == 0) err = op_kill(c, id, rec);
  else if (strcmp(op, "wait") == 0) err = op_wait(c, id, rec);
  else if (strcmp(op, "eval") == 0) err = op_eval(c, id, rec, body, n, false);
  else if (strcmp(op, "warm.python") == 0) err = op_eval(c, id, rec, body, n, true);
  else if (strcmp(op, "warm") == 0) err = op_warm(c, id, rec);
  else if (strcmp(op, "input") == 0) err = op_input(c, id, rec);
  else if (strcmp(op, "input.close") == 0) err = op_input_close(c, id, rec);
  else if (strcmp(op, "resize") == 0) err = op_resize(c, id, rec);
  else err = op_files(c, id, op, rec);
  if (err) send_error(c, id, err, g_msg);
}

static uint64_t header_id(const uint8_t *f, size_t n) {
  uint8_t h[9];
  uint64_t id = 0;
  if (cobs_peek(f, n, h, 9) < 9) return 0;
  for (int i = 8; i >= 1; i--) id = id << 8 | h[i];
  return id > 9007199254740991ULL ? 0 : id;
}

static void on_frame(struct conn *c, uint8_t *f, size_t n) {
  uint64_t id = header_id(f, n);
  long m = cobs_decode(f, n);
  if (m < 0) return frame_error(c, id, "bad_request", "frame: invalid COBS encoding");
  if (m < 9) {
    snprintf(g_msg, sizeof(g_msg), "frame: %ld bytes is shorter than its 9-byte header", m);
    return send_error(c, 0, "bad_request", g_msg);
  }
  const uint8_t *rec = f + 9, *end = f + m, *e;
  struct req *r = find_req(c, id);
  switch (f[0]) {
  case K_REQUEST:
    e = chk_record(rec, end, 1);
    if (e != end) {
      snprintf(g_msg, sizeof(g_msg), "request: %s", e ? "bytes after the record" : wire_why);
      return send_error(c, id, "bad_request", g_msg);
    }
    return on_request(c, id, rec, f, (size_t)m);
  case K_DATA: /* chunks of an upload that already failed are dropped: its reply said why */
    if (r && r->op == OP_WRITE) files_data(r, rec, (size_t)(end - rec));
    return;
  case K_END:
    if (!r || r->op != OP_WRITE) return;
    e = chk_record(rec, end, 1);
    if (e != end) {
      snprintf(g_msg, sizeof(g_msg), "end: %s", e ? "bytes after the record" : wire_why);
      return req_fail(r, "bad_request", g_msg);
    }
    return files_end(r, rec);
  default:
    snprintf(g_msg, sizeof(g_msg), "frame: kind 0x%02x is not one a host sends", f[0]);
    return frame_error(c, id, "bad_request", g_msg);
  }
}

/* ---------------------------------------------------------------- connections */

static struct conn *conn_new(int fd, bool port) {
  struct conn *c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  c->fd = fd;
  c->port = port;
  c->up = !port;
  c->next = g_conns;
  g_conns = c;
  return c;
}

/* The host went away: its requests are cancelled (nobody is left to read their output). */
static void conn_down(struct conn *c, const char *why) {
  while (c->nreqs > 0) req_end(c->reqs[c->nreqs - 1]);
  buf_free(&c->out);
  in_free(&c->in);
  if (c->port) {
    c->up = false;
    g_port_check_ms = now_ms() + PORT_RECHECK_MS;
  } else {
    close(c->fd);
    c->fd = -1;
    c->dead = true;
  }
  debugmsg("host disconnected (%s)", why);
}

/* Parses buffered frames while the output queue has room; reads more if `readable`. */
static void conn_pump(struct conn *c, bool readable) {
  uint8_t *f;
  size_t n;
  for (int reads = 0; !c->dead && c->up && c->out.len < OUTQ_STOP;) {
    int r = in_next(&c->in, &f, &n);
    if (r == 1) {
      on_frame(c, f, n);
      continue;
    }
    if (r == 2) {
      snprintf(g_msg, sizeof(g_msg), "frame of %zu bytes exceeds the %d-byte limit", n, MAX_FRAME_BYTES);
      frame_error(c, header_id(c->in.head, c->in.headlen), "too_large", g_msg);
      continue;
    }
    if (!readable || reads++ >= 16) return; /* 1 MiB per turn: others get served too */
    size_t room;
    uint8_t *p = in_room(&c->in, &room);
    if (!p) return conn_down(c, "out of memory");
    ssize_t k = read(c->fd, p, room);
    if (k > 0) c->in.len += (size_t)k;
    else if (k == 0) return conn_down(c, "end of stream");
    else if (errno == EAGAIN || errno == EINTR) return;
    else return conn_down(c, strerror(errno));
  }
}

static void conn_flush(struct conn *c) {
  while (!c->dead && c->up && c->out.len > 0) {
    ssize_t k = c->port ? write(c->fd, c->out.p + c->out.off, c->out.len)
                        : send(c->fd, c->out.p + c->out.off, c->out.len, MSG_NOSIGNAL);
    if (k > 0) buf_drop(&c->out, (size_t)k);
    else if (k < 0 && errno == EINTR) continue;
    else if (k < 0 && errno == EAGAIN) return;
    else return conn_down(c, k < 0 ? strerror(errno) : "write returned 0");
  }
}

/* ---------------------------------------------------------------- the virtio port */

/* virtio_console: while no host is connected poll() reports POLLHUP (and POLLIN: read returns
 * 0), writes block, and the fd must stay open (closing it loses buffered data). So while the
 * host is away the fd is left out of poll() (it would spin) and checked on SIGIO (sent on host
 * open/close and on data, thanks to O_ASYNC + F_SETOWN) or every PORT_RECHECK_MS. */
static void port_check(void) {
  struct pollfd p = { .fd = g_port->fd, .events = POLLIN };
  g_port_check_ms = now_ms() + PORT_RECHECK_MS;
  if (poll(&p, 1, 0) < 0) return;
  if (p.revents & POLLHUP) {
    /* POLLIN is always set while the host is away (read returns 0 at once), so only bytes count:
     * the port-open control message and a new host's first bytes travel on different
     * virtqueues, and the bytes can win. Dropping them would lose its first request (seen: a
     * re-adopting daemon's hello timed out). */
    size_t room;
    uint8_t *buf = in_room(&g_port->in, &room);
    ssize_t k = buf ? read(g_port->fd, buf, room) : -1;
    if (k <= 0) return;
    g_port->in.len += (size_t)k;
  }
  g_port->up = true;
  debugmsg("host connected");
  conn_pump(g_port, false); /* frames already read above are served now, not at the next POLLIN */
}

static bool find_port(char *dev, size_t devlen, char *sys, size_t syslen) {
  const char *base = "/sys/class/virtio-ports";
  DIR *d = opendir(base);
  struct dirent *e;
  bool found = false;
  while (d && !found && (e = readdir(d))) {
    char path[512], name[128] = "";
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof(path), "%s/%s/name", base, e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t k = read(fd, name, sizeof(name) - 1);
    close(fd);
    if (k <= 0) continue;
    name[k] = 0;
    name[strcspn(name, "\n")] = 0;
    if (strcmp(name, AGENT_PORT_NAME) != 0) continue;
    snprintf(dev, devlen, "/dev/%s", e->d_name);
    snprintf(sys, syslen, "%s/%s", base, e->d_name);
    found = true;
  }
  if (d) closedir(d);
  return found;
}

static void sleep_ms(long ms) {
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  nanosleep(&ts, NULL);
}

/* No udev in the guest: creates /dev/vportNpM from the port's major:minor if devtmpfs lacks it. */
static void ensure_node(const char *dev, const char *sys) {
  struct stat st;
  char path[600], mm[32] = "";
  unsigned maj, min;
  if (stat(dev, &st) == 0) return;
  snprintf(path, sizeof(path), "%s/dev", sys);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t k = fd >= 0 ? read(fd, mm, sizeof(mm) - 1) : -1;
  if (fd >= 0) close(fd);
  if (k <= 0 || sscanf(mm, "%u:%u", &maj, &min) != 2) return logmsg("%s holds no major:minor", path);
  if (mknod(dev, S_IFCHR | 0600, makedev(maj, min)) != 0) logmsg("mknod %s: %s", dev, strerror(errno));
  else logmsg("created %s (%u:%u)", dev, maj, min);
}

static void port_open(void) {
  char dev[300], sys[300];
  const char *path = opt_device;
  for (int i = 0; !path; i++) {
    if (find_port(dev, sizeof(dev), sys, sizeof(sys))) {
      ensure_node(dev, sys);
      path = dev;
    } else {
      if (i % 100 == 0) logmsg("no virtio port named %s yet; is virtio_console loaded?", AGENT_PORT_NAME);
      sleep_ms(100);
    }
  }
  int fd;
  while ((fd = open(path, O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)) < 0) {
    logmsg("open %s: %s; retrying", path, strerror(errno));
    sleep_ms(1000);
  }
  if (fcntl(fd, F_SETOWN, getpid()) != 0 || fcntl(fd, F_SETFL, O_NONBLOCK | O_ASYNC) != 0)
    logmsg("%s: no SIGIO (%s); noticing the host by polling", path, strerror(errno));
  g_port = conn_new(fd, true);
  logmsg("serving %s", path);
  port_check();
}

static int listen_on(const char *path) {
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof(a.sun_path)) return -1;
  strcpy(a.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  unlink(path);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 16) != 0) return -1;
  logmsg("listening on %s", path);
  return fd;
}

/* ---------------------------------------------------------------- main loop */

enum slot_type { S_SIG, S_LISTEN, S_CONN, S_CHILD, S_WORKER_IN, S_WORKER_OUT };
struct slot { enum slot_type t; void *p; int k; };
static struct pollfd *g_pfd;
static struct slot *g_slot;
static size_t g_npfd, g_cappfd;

static void add_fd(int fd, short events, enum slot_type t, void *p, int k) {
  if (g_npfd == g_cappfd) {
    size_t cap = g_cappfd ? g_cappfd * 2 : 64;
    struct pollfd *pf = realloc(g_pfd, cap * sizeof(*pf));
    if (pf) g_pfd = pf;
    struct slot *sl = realloc(g_slot, cap * sizeof(*sl));
    if (sl) g_slot = sl;
    if (!pf || !sl) return;
    g_cappfd = cap;
  }
  g_pfd[g_npfd] = (struct pollfd){ .fd = fd, .events = events };
  g_slot[g_npfd++] = (struct slot){ t, p, k };
}

static void shutdown_agent(int sig) {
  logmsg("signal %d: killing every process group and exiting", sig);
  exec_kill_all();
  if (opt_listen) unlink(opt_listen);
  exit(0);
}

static void on_signals(void) {
  struct signalfd_siginfo si[16];
  ssize_t k;
  while ((k = read(g_sigfd, si, sizeof(si))) > 0) {
    for (size_t i = 0; i < (size_t)k / sizeof(si[0]); i++) {
      int sig = (int)si[i].ssi_signo;
      if (sig == SIGTERM || sig == SIGINT) shutdown_agent(sig);
      if (sig == SIGIO && g_port && !g_port->up) port_check();
      if (sig == SIGCHLD) {
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) exec_reaped(pid, status);
      }
    }
  }
}

static void req_timers(int64_t now, int64_t *next) {
  for (struct conn *c = g_conns; c; c = c->next)
    for (int i = c->nreqs - 1; i >= 0; i--) {
      struct req *r = c->reqs[i];
      if (!r->deadline_ms || (r->op != OP_WAIT && r->op != OP_WRITE)) continue;
      if (now < r->deadline_ms) {
        if (r->deadline_ms < *next) *next = r->deadline_ms;
        continue;
      }
      if (r->op == OP_WAIT)
        snprintf(g_msg, sizeof(g_msg), "process %d still running after %lld ms", (int)r->pid, (long long)r->timeout_ms);
      else snprintf(g_msg, sizeof(g_msg), "files.write %s: no data for %d ms", r->path, UPLOAD_IDLE_MS);
      req_fail(r, "timeout", g_msg);
    }
}

static void sweep(void) {
  for (struct conn **pc = &g_conns; *pc;) {
    struct conn *c = *pc;
    if (!c->dead) {
      pc = &c->next;
      continue;
    }
    *pc = c->next;
    free(c);
  }
  for (struct child **pp = &g_children; *pp;) {
    struct child *ch = *pp;
    if (!ch->dead) {
      pp = &ch->next;
      continue;
    }
    *pp = ch->next;
    free(ch->in);
    free(ch->ring[0].p);
    free(ch->ring[1].p);
    free(ch);
  }
}

static void loop(void) {
  for (;;) {
    int64_t now = now_ms(), next = INT64_MAX;
    bool busy = false;
    if (g_port && !g_port->up && now >= g_port_check_ms) port_check(); /* the slow fallback */
    exec_timers(now, &next);
    req_timers(now, &next);
    int nconns = 0;
    for (struct conn *c = g_conns; c; c = c->next) {
      if (c->dead) continue;
      nconns += !c->port;
      conn_pump(c, false);
      busy |= files_pump(c);
      conn_flush(c);
    }
    g_npfd = 0;
    add_fd(g_sigfd, POLLIN, S_SIG, NULL, 0);
    if (g_listen >= 0 && nconns < MAX_LISTEN_CONNS) add_fd(g_listen, POLLIN, S_LISTEN, NULL, 0);
    for (struct conn *c = g_conns; c; c = c->next) {
      if (c->dead) continue;
      if (c->port && !c->up) {
        if (g_port_check_ms < next) next = g_port_check_ms;
        continue;
      }
      add_fd(c->fd, (short)((c->out.len < OUTQ_STOP ? POLLIN : 0) | (c->out.len ? POLLOUT : 0)), S_CONN, c, 0);
    }
    for (struct child *ch = g_children; ch; ch = ch->next) {
      if (ch->dead) continue;
      if (child_wants_write(ch)) add_fd(ch->fd[0], POLLOUT, S_CHILD, ch, 0);
      if (child_blocked(ch)) continue;
      for (int k = 1; k <= 2; k++)
        if (ch->fd[k] >= 0) add_fd(ch->fd[k], POLLIN, S_CHILD, ch, k);
    }
    struct worker *ws[2] = { &g_js, &g_py };
    for (int i = 0; i < 2; i++) {
      if (ws[i]->from >= 0 && !worker_blocked(ws[i])) add_fd(ws[i]->from, POLLIN, S_WORKER_IN, ws[i], 0);
      if (ws[i]->to >= 0 && ws[i]->out.len) add_fd(ws[i]->to, POLLOUT, S_WORKER_OUT, ws[i], 0);
    }
    now = now_ms();
    int timeout = busy ? 0 : next == INT64_MAX ? -1 : next <= now ? 0 : next - now > 60000 ? 60000 : (int)(next - now);
    int n = poll(g_pfd, g_npfd, timeout);
    if (n < 0 && errno != EINTR) {
      logmsg("poll: %s", strerror(errno));
      sleep_ms(10);
    }
    for (size_t i = 0; n > 0 && i < g_npfd; i++) {
      short re = g_pfd[i].revents;
      struct slot *s = &g_slot[i];
      if (!re) continue;
      if (s->t == S_SIG) on_signals();
      else if (s->t == S_LISTEN) {
        int fd;
        for (int k = nconns; k < MAX_LISTEN_CONNS && (fd = accept4(g_listen, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0; k++) {
          if (!conn_new(fd, false)) close(fd);
          else debugmsg("host connected");
        }
      } else if (s->t == S_CONN) {
        struct conn *c = s->p;
        if (c->dead || !c->up || c->fd != g_pfd[i].fd) continue;
        if (c->port && (re & (POLLHUP | POLLERR))) conn_down(c, "port closed by the host");
        else {
          if (re & (POLLIN | POLLHUP | POLLERR)) conn_pump(c, true);
          if (re & POLLOUT) conn_flush(c);
        }
      } else if (s->t == S_CHILD) {
        struct child *ch = s->p;
        if (ch->dead || ch->fd[s->k] != g_pfd[i].fd) continue;
        if (s->k == 0) child_write(ch);
        else child_read(ch, s->k);
      } else if (s->t == S_WORKER_IN) {
        struct worker *w = s->p;
        if (w->from == g_pfd[i].fd) worker_read(w);
      } else if (s->t == S_WORKER_OUT) {
        struct worker *w = s->p;
        if (w->to == g_pfd[i].fd) worker_write(w);
      }
    }
    sweep();
  }
}

static int usage(void) {
  fprintf(stderr, "usage: forkd-agent [--device PATH | --listen PATH] [--hostname-file PATH] [--identity-log PATH]\n"
                  "                   [--node PATH] [--js-worker PATH] [--python PATH] [--py-worker PATH] [--verbose]\n");
  return 2;
}

int main(int argc, char **argv) {
  for (int fd = open("/dev/null", O_RDWR); fd >= 0 && fd <= 2; fd = open("/dev/null", O_RDWR)) {
  } /* fds 0..2 always open: pipes must never land there */
  for (int i = 1; i < argc; i++) {
    const char **opt = NULL, *a = argv[i];
    if (strcmp(a, "--verbose") == 0) {
      g_verbose = true;
      continue;
    }
    if (strcmp(a, "--listen") == 0) opt = &opt_listen;
    else if (strcmp(a, "--device") == 0) opt = &opt_device;
    else if (strcmp(a, "--hostname-file") == 0) opt = &opt_hostname_file;
    else if (strcmp(a, "--identity-log") == 0) opt = &opt_identity_log;
    else if (strcmp(a, "--node") == 0) opt = &g_js.bin;
    else if (strcmp(a, "--js-worker") == 0) opt = &g_js.script;
    else if (strcmp(a, "--python") == 0) opt = &g_py.bin;
    else if (strcmp(a, "--py-worker") == 0) opt = &g_py.script;
    if (!opt || i + 1 >= argc) return usage();
    *opt = argv[++i];
  }
  g_started_ns = now_ns();
  setvbuf(stderr, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGIO);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP); /* read and ignored: the console may hang up */
  sigprocmask(SIG_BLOCK, &set, NULL);
  g_sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (g_sigfd < 0) return logmsg("signalfd: %s", strerror(errno)), 1;
  logmsg("forkd-agent %s (protocol %d), pid %d", FORKD_VERSION, AGENT_PROTOCOL_VERSION, (int)getpid());
  if (opt_listen) {
    if ((g_listen = listen_on(opt_listen)) < 0) return logmsg("listen %s: %s", opt_listen, strerror(errno)), 1;
  } else port_open();
  loop();
}
