/*
 * Processes: exec (foreground: output streamed as STDOUT/STDERR frames; background: output
 * into ring buffers, collected by wait), kill, and the eval workers (node / python3 speaking
 * the same frames on fds 3 and 4). Every command runs in its own session (setsid), so a
 * timeout or cancel SIGKILLs the whole group: `sh -c 'a & b'` leaves no orphan behind.
 * Spawning is posix_spawnp (glibc: clone(CLONE_VM|CLONE_VFORK), so the agent is never
 * copied, and an exec failure comes back as the return value).
 */
#include "agent.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct child *g_children;
static uint64_t g_seq;
struct worker g_js = { .name = "js", .bin = "/usr/bin/node", .script = "/usr/lib/forkd/js-worker.mjs",
                       .missing_hint = "this image has no JavaScript runtime: build the image with `--runtime node`",
                       .to = -1, .from = -1 };
struct worker g_py = { .name = "python", .bin = "/usr/bin/python3", .script = "/usr/lib/forkd/py-worker.py",
                       .missing_hint = "this image has no Python: build the image with `--packages python3`",
                       .to = -1, .from = -1 };

static const char *const SIGNAMES[] = {
  [SIGHUP] = "SIGHUP", [SIGINT] = "SIGINT", [SIGQUIT] = "SIGQUIT", [SIGILL] = "SIGILL", [SIGTRAP] = "SIGTRAP",
  [SIGABRT] = "SIGABRT", [SIGBUS] = "SIGBUS", [SIGFPE] = "SIGFPE", [SIGKILL] = "SIGKILL", [SIGUSR1] = "SIGUSR1",
  [SIGSEGV] = "SIGSEGV", [SIGUSR2] = "SIGUSR2", [SIGPIPE] = "SIGPIPE", [SIGALRM] = "SIGALRM", [SIGTERM] = "SIGTERM",
  [SIGSTKFLT] = "SIGSTKFLT", [SIGCHLD] = "SIGCHLD", [SIGCONT] = "SIGCONT", [SIGSTOP] = "SIGSTOP",
  [SIGTSTP] = "SIGTSTP", [SIGTTIN] = "SIGTTIN", [SIGTTOU] = "SIGTTOU", [SIGURG] = "SIGURG", [SIGXCPU] = "SIGXCPU",
  [SIGXFSZ] = "SIGXFSZ", [SIGVTALRM] = "SIGVTALRM", [SIGPROF] = "SIGPROF", [SIGWINCH] = "SIGWINCH",
  [SIGIO] = "SIGIO", [SIGPWR] = "SIGPWR", [SIGSYS] = "SIGSYS",
};
#define NSIGNAMES (int)(sizeof(SIGNAMES) / sizeof(SIGNAMES[0]))

int signal_number(const char *name) {
  for (int i = 1; i < NSIGNAMES; i++)
    if (SIGNAMES[i] && strcmp(SIGNAMES[i], name) == 0) return i;
  return -1;
}

/* ---------------------------------------------------------------- spawning */

/* fd moved to >= min (so dup2 onto 0..4 in the child never clobbers another source). */
static int fd_hi(int fd, int min) {
  if (fd < 0 || fd >= min) return fd;
  int n = fcntl(fd, F_DUPFD_CLOEXEC, min);
  close(fd);
  return n;
}

/* A CLOEXEC pipe whose end `ours` (0 read, 1 write) is non-blocking; the child's stays blocking
 * (O_NONBLOCK belongs to the open file, which the child would share). */
static bool mkpipe(int p[2], int ours) {
  if (pipe2(p, O_CLOEXEC) != 0) return false;
  p[1 - ours] = fd_hi(p[1 - ours], 5);
  if (p[1 - ours] < 0) {
    close(p[ours]);
    return false;
  }
  fcntl(p[ours], F_SETFL, O_NONBLOCK);
  return true;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* New session, default signal state (the agent blocks some and ignores SIGPIPE). errno or 0.
 * With `tty` (a pty slave's path) fds 0..2 are the terminal, opened after setsid (glibc runs the
 * file actions after POSIX_SPAWN_SETSID), so it becomes the session's controlling terminal. */
static int spawn(char *const argv[], char *const envp[], const char *cwd, const char *tty, int in, int out, int err,
                 int fd3, int fd4, pid_t *pid) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none, def;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&at);
  if (tty) {
    posix_spawn_file_actions_addopen(&fa, 0, tty, O_RDWR, 0);
    posix_spawn_file_actions_adddup2(&fa, 0, 1);
    posix_spawn_file_actions_adddup2(&fa, 0, 2);
  } else {
    if (in >= 0) posix_spawn_file_actions_adddup2(&fa, in, 0);
    else posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out, 1);
    if (err != 2) posix_spawn_file_actions_adddup2(&fa, err, 2);
  }
  if (fd3 >= 0) posix_spawn_file_actions_adddup2(&fa, fd3, 3);
  if (fd4 >= 0) posix_spawn_file_actions_adddup2(&fa, fd4, 4);
  if (cwd) posix_spawn_file_actions_addchdir_np(&fa, cwd);
  sigemptyset(&none);
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &def);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  int e = posix_spawnp(pid, argv[0], &fa, &at, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  return e;
}

/* ---------------------------------------------------------------- rings (background output) */

static void ring_push(struct ring *r, const uint8_t *d, size_t n) {
  const size_t cap_max = BACKGROUND_OUTPUT_BYTES;
  if (n >= cap_max) {
    r->dropped |= n > cap_max || r->len > 0;
    d += n - cap_max;
    n = cap_max;
    r->start = r->len = 0;
  }
  if (r->len + n > r->cap && r->cap < cap_max) { /* grows while it has never wrapped (start == 0) */
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < r->len + n && cap < cap_max) cap *= 2;
    if (cap > cap_max) cap = cap_max;
    uint8_t *p = realloc(r->p, cap);
    if (!p) {
      r->dropped = true;
      return;
    }
    r->p = p;
    r->cap = cap;
  }
  if (r->len + n > r->cap) { /* full: the oldest bytes go */
    size_t drop = r->len + n - r->cap;
    r->start = (r->start + drop) % r->cap;
    r->len -= drop;
    r->dropped = true;
  }
  size_t at = (r->start + r->len) % r->cap, first = n < r->cap - at ? n : r->cap - at;
  memcpy(r->p + at, d, first);
  memcpy(r->p, d + first, n - first);
  r->len += n;
}

static void send_ring(struct conn *c, uint64_t id, uint8_t kind, const struct ring *r) {
  for (size_t done = 0; done < r->len;) {
    size_t at = (r->start + done) % r->cap, n = r->len - done;
    if (n > r->cap - at) n = r->cap - at;
    if (n > STREAM_CHUNK_BYTES) n = STREAM_CHUNK_BYTES;
    send_raw(c, kind, id, r->p + at, n);
    done += n;
  }
}

/* ---------------------------------------------------------------- exec */

static void send_exit(struct conn *c, uint64_t id, const struct child *ch, bool truncated) {
  struct w *w = w_begin(K_OK, id);
  int sig = WIFSIGNALED(ch->status) ? WTERMSIG(ch->status) : 0;
  if (WIFEXITED(ch->status)) w_int(w, "exitCode", WEXITSTATUS(ch->status));
  else w_null(w, "exitCode");
  if (sig > 0 && sig < NSIGNAMES && SIGNAMES[sig]) w_str(w, "signal", SIGNAMES[sig]);
  else w_null(w, "signal");
  w_bool(w, "timedOut", ch->timed_out);
  w_bool(w, "truncated", truncated);
  w_float(w, "durationMs", ch->duration_ms);
  send_w(c, w);
}

/* A background process's output and exit to `c`; the process is then forgotten. */
static void deliver(struct conn *c, uint64_t id, struct child *ch) {
  send_ring(c, id, K_STDOUT, &ch->ring[0]);
  send_ring(c, id, K_STDERR, &ch->ring[1]);
  send_exit(c, id, ch, ch->ring[0].dropped || ch->ring[1].dropped);
  ch->dead = true;
}

/* The leader exited and its pipes closed (or went quiet): reply, or hand over to `wait`. */
static void child_done(struct child *ch) {
  ch->done = true;
  ch->deadline_ms = 0;
  ch->duration_ms = (double)(now_ns() - ch->start_ns) / 1e6;
  close_fd(&ch->fd[0]);
  free(ch->in);
  ch->in = NULL;
  if (!ch->bg) {
    struct req *r = ch->req;
    if (r) {
      send_exit(r->conn, r->id, ch, false);
      r->child = NULL;
      ch->req = NULL;
      req_end(r);
    }
    ch->dead = true;
    return;
  }
  bool first = true;
  for (struct conn *c = g_conns; c; c = c->next)
    for (int i = c->nreqs - 1; i >= 0; i--) {
      struct req *r = c->reqs[i];
      if (r->op != OP_WAIT || r->pid != ch->pid) continue;
      if (first) {
        deliver(c, r->id, ch);
        first = false;
        req_end(r);
      } else {
        snprintf(g_msg, sizeof(g_msg), "process %d was already waited for", (int)ch->pid);
        req_fail(r, "not_found", g_msg);
      }
    }
}

static void child_check(struct child *ch) {
  if (ch->exited && !ch->done && ch->fd[1] < 0 && ch->fd[2] < 0) child_done(ch);
}

bool child_blocked(struct child *ch) {
  return !ch->bg && ch->req && ch->req->conn->out.len >= OUTQ_HIGH;
}

void child_read(struct child *ch, int k) {
  static uint8_t buf[STREAM_CHUNK_BYTES];
  ssize_t n = read(ch->fd[k], buf, sizeof(buf));
  if (n > 0) {
    ch->last_ms = now_ms();
    if (ch->bg) ring_push(&ch->ring[k - 1], buf, (size_t)n);
    else if (ch->req) send_raw(ch->req->conn, ch->pty ? K_PTY : k == 1 ? K_STDOUT : K_STDERR, ch->req->id, buf, (size_t)n);
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  close_fd(&ch->fd[k]); /* a pty master reads EIO once every slave fd is closed */
  child_check(ch);
}

bool child_wants_write(const struct child *ch) { return ch->fd[0] >= 0 && ch->in_off < ch->in_len; }

/* Writes what input is buffered; stdin closes when it is all written, unless kept open (`stdinOpen`,
 * a pty) until `input.close`. */
void child_write(struct child *ch) {
  while (ch->in_off < ch->in_len) {
    ssize_t k = write(ch->fd[0], ch->in + ch->in_off, ch->in_len - ch->in_off);
    if (k > 0) ch->in_off += (size_t)k;
    else if (k < 0 && errno == EINTR) continue;
    else if (k < 0 && errno == EAGAIN) return;
    else break; /* EPIPE (EIO for a pty): the command does not read its input */
  }
  bool broken = ch->in_off < ch->in_len;
  free(ch->in);
  ch->in = NULL;
  ch->in_len = ch->in_off = 0;
  if (!broken && ch->keep_in && !ch->in_eof) return;
  close_fd(&ch->fd[0]);
}

struct child *find_live(int64_t pid) {
  for (struct child *ch = g_children; ch; ch = ch->next)
    if (!ch->dead && !ch->done && ch->pid == pid) return ch;
  return NULL;
}

static struct child *find_bg(int64_t pid) {
  for (struct child *ch = g_children; ch; ch = ch->next)
    if (ch->bg && !ch->dead && ch->pid == pid) return ch;
  return NULL;
}

/* Forgets the oldest finished background process nobody waited for; false if all run. */
static bool bg_room(void) {
  struct child *oldest = NULL;
  int n = 0;
  for (struct child *ch = g_children; ch; ch = ch->next) {
    if (!ch->bg || ch->dead) continue;
    n++;
    if (ch->done && (!oldest || ch->seq < oldest->seq)) oldest = ch;
  }
  if (n < MAX_BACKGROUND_PROCESSES) return true;
  if (!oldest) return false;
  oldest->dead = true;
  return true;
}

struct spawn_args { char **av; size_t ac; char **envp; char **added; size_t nadded; char *cwd; };

static void spawn_args_free(struct spawn_args *a) {
  for (size_t i = 0; i < a->ac; i++) free(a->av[i]);
  for (size_t i = 0; i < a->nadded; i++) free(a->added[i]);
  free(a->av);
  free(a->added);
  free(a->envp);
  free(a->cwd);
}

/* argv (or /bin/sh -c), cwd, and the environment: the agent's plus `env`, which wins. */
static const char *parse_spawn(const uint8_t *rec, struct spawn_args *a) {
  struct val argv, shell, env, cwd, item;
  bool has_argv = rec_get(rec, "argv", &argv) && argv.t != T_NULL;
  int has_shell = p_str(rec, "shell", &shell);
  if ((has_argv && argv.t != T_LIST) || has_shell < 0) return fail("bad_request", "exec: `argv` must be a list of strings, `shell` a string");
  if (has_argv == (has_shell == 1)) return fail("bad_request", "exec needs exactly one of `argv` or `shell`");
  size_t n = has_argv ? argv.n : 3;
  if (n == 0) return fail("bad_request", "exec argv is empty");
  if (!(a->av = calloc(n + 1, sizeof(char *)))) return fail("internal", "exec: out of memory");
  if (!has_argv) {
    a->av[0] = strdup("/bin/sh");
    a->av[1] = strdup("-c");
    a->av[2] = cstr(&shell);
    a->ac = 3;
    if (!a->av[2]) return fail("bad_request", "exec: `shell` contains a NUL byte");
  } else {
    const uint8_t *p = argv.p;
    for (; a->ac < n; a->ac++) {
      p = val_at(p, &item);
      if (item.t != T_STRING) return fail("bad_request", "exec: argv[%zu] is not a string", a->ac);
      if (!(a->av[a->ac] = cstr(&item))) return fail("bad_request", "exec: argv[%zu] contains a NUL byte", a->ac);
    }
    if (!a->av[0][0]) return fail("bad_request", "exec argv is empty");
  }
  int t = p_str(rec, "cwd", &cwd);
  if (t < 0 || (t == 1 && (cwd.n == 0 || cwd.n > MAX_PATH_BYTES || cwd.p[0] != '/' || !(a->cwd = cstr(&cwd)))))
    return fail("bad_request", "exec: `cwd` must be an absolute path");
  size_t n0 = 0;
  while (environ[n0]) n0++;
  bool has_env = rec_get(rec, "env", &env) && env.t != T_NULL;
  if (has_env && env.t != T_RECORD) return fail("bad_request", "exec: `env` must be a record of strings");
  size_t ne = has_env ? (size_t)(env.p[0] | env.p[1] << 8) : 0;
  if (!(a->added = calloc(ne + 1, sizeof(char *))) || !(a->envp = calloc(n0 + ne + 1, sizeof(char *))))
    return fail("internal", "exec: out of memory");
  const uint8_t *p = has_env ? env.p + 2 : NULL, *key;
  size_t keylen;
  for (; a->nadded < ne; a->nadded++) {
    p = rec_field(p, &key, &keylen, &item);
    if (item.t != T_STRING || memchr(key, 0, keylen) || memchr(key, '=', keylen) || memchr(item.p, 0, item.n))
      return fail("bad_request", "exec: `env` values must be strings, keys without '=' or NUL");
    char *s = malloc(keylen + item.n + 2);
    if (!s) return fail("internal", "exec: out of memory");
    memcpy(s, key, keylen);
    s[keylen] = '=';
    memcpy(s + keylen + 1, item.p, item.n);
    s[keylen + 1 + item.n] = 0;
    a->added[a->nadded] = s;
  }
  size_t k = 0;
  for (size_t i = 0; i < n0; i++) {
    const char *e = environ[i], *eq = strchr(e, '=');
    size_t kl = eq ? (size_t)(eq - e) : strlen(e);
    bool overridden = false;
    for (size_t j = 0; j < a->nadded && !overridden; j++)
      overridden = strncmp(a->added[j], e, kl) == 0 && a->added[j][kl] == '=';
    if (!overridden) a->envp[k++] = (char *)e;
  }
  for (size_t j = 0; j < a->nadded; j++) a->envp[k++] = a->added[j];
  return NULL;
}

const char *op_exec(struct conn *c, uint64_t id, const uint8_t *rec) {
  bool bg = false, keep = false, announce = false;
  int64_t timeout = 0, cols = 0, rows = 0;
  struct val in, ptyv;
  if (p_bool(rec, "background", &bg) < 0 || p_bool(rec, "stdinOpen", &keep) < 0 || p_bool(rec, "announce", &announce) < 0)
    return fail("bad_request", "exec: `background`, `stdinOpen` and `announce` must be bools");
  int t = p_int(rec, "timeoutMs", 0, MAX_EXEC_TIMEOUT_MS, &timeout);
  if (t < 0) return fail("bad_request", "exec: `timeoutMs` must be an integer 0..%d (0: none)", MAX_EXEC_TIMEOUT_MS);
  if (t == 0 && !bg) timeout = DEFAULT_EXEC_TIMEOUT_MS; /* background: none unless given */
  bool has_pty = rec_get(rec, "pty", &ptyv) && ptyv.t != T_NULL;
  if (has_pty && (ptyv.t != T_RECORD || p_int(ptyv.p, "cols", 1, MAX_PTY_DIMENSION, &cols) != 1 ||
                  p_int(ptyv.p, "rows", 1, MAX_PTY_DIMENSION, &rows) != 1))
    return fail("bad_request", "exec: `pty` must be a record of `cols` and `rows`, integers 1..%d", MAX_PTY_DIMENSION);
  if (bg && (has_pty || keep)) return fail("bad_request", "exec: `pty` and `stdinOpen` need a foreground exec");
  bool has_in = rec_get(rec, "stdin", &in) && in.t != T_NULL;
  if (has_in && (in.t != T_BYTES || in.n > MAX_EXEC_STDIN_BYTES))
    return fail("bad_request", "exec: `stdin` must be at most %d bytes", MAX_EXEC_STDIN_BYTES);
  if (bg && !bg_room())
    return fail("busy", "%d background processes are running; kill or wait for one", MAX_BACKGROUND_PROCESSES);
  struct spawn_args a = { 0 };
  const char *err = parse_spawn(rec, &a);
  int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
  char slave[64] = "";
  struct child *ch = NULL;
  if (!err && !(ch = calloc(1, sizeof(*ch)))) err = fail("internal", "exec: out of memory");
  if (!err && has_in && !(ch->in = malloc(in.n ? in.n : 1))) err = fail("internal", "exec: out of memory");
  if (!err && has_pty) { /* pout[0]: the master we read, pin[1]: a dup of it we write */
    if ((pout[0] = pty_open((int)cols, (int)rows, slave, sizeof(slave))) < 0 ||
        (pin[1] = fcntl(pout[0], F_DUPFD_CLOEXEC, 0)) < 0)
      err = fail("internal", "exec: pty: %s", strerror(errno));
  } else if (!err && (((has_in || keep) && !mkpipe(pin, 1)) || !mkpipe(pout, 0) || !mkpipe(perr, 0)))
    err = fail("internal", "exec: pipe: %s", strerror(errno));
  pid_t pid = 0;
  int e = err ? 0 : spawn(a.av, a.envp, a.cwd, has_pty ? slave : NULL, pin[0], pout[1], perr[1], -1, -1, &pid);
  if (e && a.cwd && access(a.cwd, X_OK) != 0) e = errno, err = fail(errno_code(e), "exec: cwd %s: %s", a.cwd, strerror(e));
  else if (e) err = fail(e == ENOENT ? "not_found" : "exec_failed", "spawn %s: %s", a.av[0], strerror(e));
  spawn_args_free(&a);
  close_fd(&pin[0]);
  close_fd(&pout[1]);
  close_fd(&perr[1]);
  if (err) {
    close_fd(&pin[1]);
    close_fd(&pout[0]);
    close_fd(&perr[0]);
    if (ch) free(ch->in);
    free(ch);
    return err;
  }
  ch->pid = pid;
  ch->fd[0] = pin[1];
  ch->fd[1] = pout[0];
  ch->fd[2] = perr[0];
  ch->bg = bg;
  ch->pty = has_pty;
  ch->keep_in = keep || has_pty;
  ch->seq = ++g_seq;
  ch->start_ns = now_ns();
  ch->last_ms = now_ms();
  ch->deadline_ms = timeout ? ch->last_ms + timeout : 0;
  if (has_in) {
    memcpy(ch->in, in.p, in.n);
    ch->in_len = in.n;
  }
  ch->next = g_children;
  g_children = ch;
  if (!bg) {
    struct req *r = req_new(c, id, OP_EXEC);
    if (!r) {
      kill(-pid, SIGKILL);
      return fail("internal", "exec: out of memory");
    }
    r->child = ch;
    ch->req = r;
    if (announce) { /* before any output frame: they are only read from the next poll turn */
      struct w *w = w_begin(K_STARTED, id);
      w_int(w, "pid", pid);
      send_w(c, w);
    }
  } else {
    struct w *w = w_begin(K_OK, id);
    w_int(w, "pid", pid);
    send_w(c, w);
  }
  if (ch->fd[0] >= 0) child_write(ch);
  return NULL;
}

const char *op_wait(struct conn *c, uint64_t id, const uint8_t *rec) {
  int64_t pid, timeout = DEFAULT_WAIT_TIMEOUT_MS;
  if (p_int(rec, "pid", 1, 0x7fffffff, &pid) != 1) return fail("bad_request", "wait: `pid` must be a pid");
  if (p_int(rec, "timeoutMs", 1, MAX_EXEC_TIMEOUT_MS, &timeout) < 0)
    return fail("bad_request", "wait: `timeoutMs` must be an integer 1..%d", MAX_EXEC_TIMEOUT_MS);
  struct child *ch = find_bg(pid);
  if (!ch) return fail("not_found", "no background process with pid %lld", (long long)pid);
  if (ch->done) {
    deliver(c, id, ch);
    return NULL;
  }
  struct req *r = req_new(c, id, OP_WAIT);
  if (!r) return fail("internal", "wait: out of memory");
  r->pid = (pid_t)pid;
  r->timeout_ms = timeout;
  r->deadline_ms = now_ms() + timeout;
  return NULL;
}

const char *op_kill(struct conn *c, uint64_t id, const uint8_t *rec) {
  int64_t pid;
  struct val s;
  char name[16] = "SIGKILL";
  if (p_int(rec, "pid", 1, 0x7fffffff, &pid) != 1) return fail("bad_request", "kill: `pid` must be a pid");
  int t = p_str(rec, "signal", &s);
  if (t < 0 || (t == 1 && (s.n >= sizeof(name) || memchr(s.p, 0, s.n)))) return fail("bad_request", "kill: bad `signal`");
  if (t == 1) {
    memcpy(name, s.p, s.n);
    name[s.n] = 0;
  }
  int sig = signal_number(name);
  if (sig < 0) return fail("bad_request", "unknown signal %s", name);
  struct child *ch = find_live(pid); /* a running one first: a waited-for pid may be reused */
  if (!ch) ch = find_bg(pid);
  if (!ch) return fail("not_found", "no process with pid %lld", (long long)pid);
  bool signalled = false;
  if (!ch->done) {
    if (kill(-ch->pid, sig) == 0) signalled = true;
    else if (errno != ESRCH) return fail("internal", "kill %lld: %s", (long long)pid, strerror(errno));
  }
  struct w *w = w_begin(K_OK, id);
  w_bool(w, "signalled", signalled);
  send_w(c, w);
  return NULL;
}

/* ---------------------------------------------------------------- eval workers */

static bool runtime_present(const struct worker *w) {
  return access(w->bin, X_OK) == 0 && access(w->script, R_OK) == 0;
}

/* NULL, or the error code (message in g_msg). */
static const char *worker_start(struct worker *w) {
  int to[2], from[2];
  if (!mkpipe(to, 1)) return fail("internal", "eval: pipe: %s", strerror(errno));
  if (!mkpipe(from, 0)) {
    close(to[0]);
    close(to[1]);
    return fail("internal", "eval: pipe: %s", strerror(errno));
  }
  char *av[] = { (char *)w->bin, (char *)w->script, NULL };
  pid_t pid;
  /* fd 3: frames to the worker, fd 4: frames from it, 0: /dev/null, 1 and 2: our log. */
  int e = spawn(av, environ, NULL, NULL, -1, 2, 2, to[0], from[1], &pid);
  close(to[0]);
  close(from[1]);
  if (e) {
    close(to[1]);
    close(from[0]);
    logmsg("starting the %s worker %s %s: %s", w->name, w->bin, w->script, strerror(e));
    return fail(e == ENOENT ? "unsupported" : "internal", "eval: starting %s %s: %s", w->bin, w->script, strerror(e));
  }
  w->pid = pid;
  w->to = to[1];
  w->from = from[0];
  logmsg("%s worker started (pid %d)", w->name, (int)pid);
  return NULL;
}

/* Kills the worker (its whole group) and fails the request it was running; queued ones wait
 * for the next worker, started lazily by worker_pump. */
static void worker_down(struct worker *w, const char *code, const char *msg) {
  if (w->pid > 0) {
    kill(-w->pid, SIGKILL);
    logmsg("%s worker (pid %d) stopped: %s", w->name, (int)w->pid, msg);
  }
  w->pid = 0;
  close_fd(&w->to);
  close_fd(&w->from);
  buf_free(&w->out);
  in_free(&w->in);
  if (w->busy) {
    struct req *r = w->cur;
    w->busy = false;
    w->cur = NULL;
    w->deadline_ms = 0;
    if (r) {
      r->worker = NULL;
      req_fail(r, code, msg);
    }
  }
}

void worker_write(struct worker *w) {
  while (w->to >= 0 && w->out.len > 0) {
    ssize_t k = write(w->to, w->out.p + w->out.off, w->out.len);
    if (k > 0) buf_drop(&w->out, (size_t)k);
    else if (k < 0 && errno == EINTR) continue;
    else if (k < 0 && errno == EAGAIN) return;
    else return worker_down(w, "internal", "eval worker exited");
  }
}

/* One forwarded request at a time per worker. */
static void worker_pump(struct worker *w) {
  while (!w->busy && w->qhead) {
    struct req *r = w->qhead;
    w->qhead = r->qnext;
    if (!w->qhead) w->qtail = NULL;
    r->qnext = NULL;
    const char *code = w->pid ? NULL : worker_start(w);
    if (code) {
      r->worker = NULL;
      req_fail(r, code, g_msg);
      continue;
    }
    if (!cobs_append(&w->out, r->body, r->body_len, NULL, 0)) {
      r->worker = NULL;
      req_fail(r, "internal", "eval: out of memory");
      continue;
    }
    free(r->body);
    r->body = NULL;
    w->busy = true;
    w->cur = r;
    w->cur_id = r->id;
    w->deadline_ms = now_ms() + r->timeout_ms + WORKER_GRACE_MS;
    worker_write(w);
  }
}

bool worker_blocked(struct worker *w) {
  return w->busy && w->cur && w->cur->conn->out.len >= OUTQ_HIGH;
}

/* A frame from the worker: only its header is read; frames of the running request go to the
 * host verbatim, anything else (a cancelled request's reply, junk) is dropped. */
static void worker_frame(struct worker *w, const uint8_t *f, size_t n) {
  uint8_t h[9];
  uint64_t id = 0;
  if (cobs_peek(f, n, h, 9) < 9) return;
  for (int i = 8; i >= 1; i--) id = id << 8 | h[i];
  bool final = h[0] == K_OK || h[0] == K_ERROR;
  if (!w->busy || id != w->cur_id || !(final || h[0] == K_STDOUT || h[0] == K_STDERR)) return;
  struct req *r = w->cur;
  if (r && r->conn->up && !r->conn->dead) {
    uint8_t *o = buf_room(&r->conn->out, n + 1);
    if (o) {
      memcpy(o, f, n);
      o[n] = 0;
      r->conn->out.len += n + 1;
    }
  }
  if (!final) return;
  w->busy = false;
  w->cur = NULL;
  w->deadline_ms = 0;
  if (r) {
    r->worker = NULL;
    req_end(r);
  }
}

static void worker_in(struct worker *w, bool readable) {
  uint8_t *f;
  size_t n;
  for (int reads = 0; w->from >= 0 && !worker_blocked(w);) {
    int r = in_next(&w->in, &f, &n);
    if (r == 1) {
      worker_frame(w, f, n);
      continue;
    }
    if (r == 2) return worker_down(w, "internal", "eval worker sent an oversized frame");
    if (!readable || reads++ >= 16) return;
    size_t room;
    uint8_t *p = in_room(&w->in, &room);
    if (!p) return worker_down(w, "internal", "eval worker: out of memory");
    ssize_t k = read(w->from, p, room);
    if (k > 0) w->in.len += (size_t)k;
    else if (k == 0) return worker_down(w, "internal", "eval worker exited");
    else if (errno == EAGAIN || errno == EINTR) return;
    else return worker_down(w, "internal", "eval worker exited");
  }
}

void worker_read(struct worker *w) { worker_in(w, true); }

/* eval (language js or python) and warm.python: forwarded to the worker unchanged. */
const char *op_eval(struct conn *c, uint64_t id, const uint8_t *rec, const uint8_t *body, size_t n, bool warm) {
  struct worker *w = warm ? &g_py : &g_js;
  int64_t timeout = warm ? WARM_PYTHON_TIMEOUT_MS : DEFAULT_EVAL_TIMEOUT_MS;
  if (!warm) {
    struct val lang, code;
    int t = p_str(rec, "language", &lang);
    if (t == 1 && lang.n == 6 && memcmp(lang.p, "python", 6) == 0) w = &g_py;
    else if (t != 0 && !(t == 1 && lang.n == 2 && memcmp(lang.p, "js", 2) == 0))
      return fail("bad_request", "eval: `language` must be \"js\" or \"python\"");
    if (p_str(rec, "code", &code) != 1 || code.n > MAX_EVAL_CODE_BYTES)
      return fail("bad_request", "eval: `code` must be a string of at most %d bytes", MAX_EVAL_CODE_BYTES);
    if (p_int(rec, "timeoutMs", 1, MAX_EXEC_TIMEOUT_MS, &timeout) < 0)
      return fail("bad_request", "eval: `timeoutMs` must be an integer 1..%d", MAX_EXEC_TIMEOUT_MS);
  }
  if (!w->pid && !runtime_present(w))
    return fail("unsupported", "%s: %s (no %s or %s)", warm ? "warm.python" : "eval", w->missing_hint, w->bin, w->script);
  struct req *r = req_new(c, id, OP_EVAL);
  if (!r || !(r->body = malloc(n))) {
    if (r) req_end(r);
    return fail("internal", "eval: out of memory");
  }
  memcpy(r->body, body, n);
  r->body_len = n;
  r->worker = w;
  r->timeout_ms = timeout;
  if (w->qtail) w->qtail->qnext = r;
  else w->qhead = r;
  w->qtail = r;
  worker_pump(w);
  return NULL;
}

void warm_workers(bool js, bool python, bool *js_up, bool *py_up) {
  if (js && !g_js.pid && runtime_present(&g_js)) worker_start(&g_js);
  if (python && !g_py.pid && runtime_present(&g_py)) worker_start(&g_py);
  *js_up = g_js.pid > 0;
  *py_up = g_py.pid > 0;
}

/* After identity: each worker reseeds its user-space generators before its next frame. */
void reseed_workers(void) {
  struct worker *ws[2] = { &g_js, &g_py };
  for (int i = 0; i < 2; i++) {
    if (ws[i]->pid <= 0 || ws[i]->out.len > MAX_FRAME_BYTES) continue;
    struct w *w = w_begin(K_REQUEST, 0);
    w_str(w, "op", "reseed");
    if (w_end(w)) cobs_append(&ws[i]->out, w->p, w->len, NULL, 0);
    worker_write(ws[i]);
  }
}

/* ---------------------------------------------------------------- bookkeeping */

void exec_reaped(pid_t pid, int status) {
  struct worker *ws[2] = { &g_js, &g_py };
  for (int i = 0; i < 2; i++)
    if (ws[i]->pid == pid) return worker_down(ws[i], "internal", "eval worker exited");
  for (struct child *ch = g_children; ch; ch = ch->next)
    if (ch->pid == pid && !ch->exited && !ch->dead) {
      ch->exited = true;
      ch->status = status;
      ch->last_ms = now_ms(); /* the drain's quiet period starts now */
      child_check(ch);
      return;
    }
}

void exec_timers(int64_t now, int64_t *next) {
  for (struct child *ch = g_children; ch; ch = ch->next) {
    if (ch->dead || ch->done) continue;
    if (ch->deadline_ms && now >= ch->deadline_ms) {
      ch->timed_out = true;
      ch->deadline_ms = 0;
      kill(-ch->pid, SIGKILL);
    } else if (ch->deadline_ms && ch->deadline_ms < *next) *next = ch->deadline_ms;
    if (child_blocked(ch)) ch->last_ms = now; /* output waiting on the host is not quiet */
    if (!ch->exited || (ch->fd[1] < 0 && ch->fd[2] < 0)) continue;
    /* The leader is gone but the pipes are open: a daemonized grandchild may hold them forever. */
    if (now - ch->last_ms >= DRAIN_IDLE_MS) {
      close_fd(&ch->fd[1]);
      close_fd(&ch->fd[2]);
      child_check(ch);
    } else if (ch->last_ms + DRAIN_IDLE_MS < *next) *next = ch->last_ms + DRAIN_IDLE_MS;
  }
  struct worker *ws[2] = { &g_js, &g_py };
  for (int i = 0; i < 2; i++) {
    struct worker *w = ws[i];
    if (w->busy && w->deadline_ms && now >= w->deadline_ms) {
      snprintf(g_msg, sizeof(g_msg), "eval did not finish within %lld ms; its %s worker was killed (state lost)",
               (long long)(w->cur ? w->cur->timeout_ms : 0), w->name);
      worker_down(w, "timeout", g_msg);
    } else if (w->busy && w->deadline_ms && w->deadline_ms < *next) *next = w->deadline_ms;
    if (w->from >= 0 && w->in.start < w->in.len) worker_in(w, false);
    worker_pump(w);
  }
}

void exec_req_end(struct req *r) {
  if (r->op == OP_EXEC && r->child) { /* cancelled: kill the group, drain and reap it unseen */
    struct child *ch = r->child;
    ch->req = NULL;
    r->child = NULL;
    if (!ch->done) kill(-ch->pid, SIGKILL);
  }
  if (r->op == OP_EVAL && r->worker) {
    struct worker *w = r->worker;
    if (w->cur == r) w->cur = NULL; /* still busy: its reply will be dropped */
    for (struct req **q = &w->qhead, *prev = NULL; *q; prev = *q, q = &(*q)->qnext)
      if (*q == r) {
        *q = r->qnext;
        if (w->qtail == r) w->qtail = prev;
        break;
      }
  }
  free(r->body);
  r->body = NULL;
}

void exec_kill_all(void) {
  for (struct child *ch = g_children; ch; ch = ch->next)
    if (!ch->done && !ch->dead) kill(-ch->pid, SIGKILL);
  if (g_js.pid > 0) kill(-g_js.pid, SIGKILL);
  if (g_py.pid > 0) kill(-g_py.pid, SIGKILL);
}
