/*
 * Interactive processes (foreground execs started with `stdinOpen` or `pty`): pseudo-terminals,
 * and the ops that reach a running process by pid: `input` (bytes for its stdin or terminal),
 * `input.close` (end of input) and `resize` (the terminal's size; the kernel sends SIGWINCH).
 * Input waits in the process's buffer, at most PROCESS_INPUT_BUFFER_BYTES: a host sending more
 * than the process reads is answered `busy` (and retries), so memory stays bounded.
 */
#include "agent.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

/* A master whose slave is unlocked and sized; the slave's path in `slave`. */
int pty_open(int cols, int rows, char *slave, size_t slavelen) {
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0) return -1;
  struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
  if (grantpt(m) != 0 || unlockpt(m) != 0 || ptsname_r(m, slave, slavelen) != 0 || ioctl(m, TIOCSWINSZ, &ws) != 0 ||
      fcntl(m, F_SETFL, O_NONBLOCK) != 0) {
    int e = errno;
    close(m);
    errno = e;
    return -1;
  }
  return m;
}

static void reply_empty(struct conn *c, uint64_t id) { send_w(c, w_begin(K_OK, id)); }

/* The interactive process `pid` names, or NULL with the error in g_msg (code returned in *err). */
static struct child *target(const uint8_t *rec, const char *op, const char **err) {
  int64_t pid;
  struct child *ch;
  if (p_int(rec, "pid", 1, 0x7fffffff, &pid) != 1) *err = fail("bad_request", "%s: `pid` must be a pid", op);
  else if (!(ch = find_live(pid))) *err = fail("not_found", "%s: no running process with pid %lld", op, (long long)pid);
  else if (!ch->keep_in) *err = fail("bad_request", "%s: process %lld was started without `stdinOpen` or `pty`", op, (long long)pid);
  else return ch;
  return NULL;
}

/* Appends to the unwritten input (the caller checked the bound). */
static bool in_append(struct child *ch, const uint8_t *d, size_t n) {
  size_t pending = ch->in_len - ch->in_off;
  uint8_t *p = malloc(pending + n ? pending + n : 1);
  if (!p) return false;
  if (pending) memcpy(p, ch->in + ch->in_off, pending);
  memcpy(p + pending, d, n);
  free(ch->in);
  ch->in = p;
  ch->in_off = 0;
  ch->in_len = pending + n;
  return true;
}

static const char *queue_input(struct child *ch, const char *op, const uint8_t *d, size_t n) {
  if (ch->in_eof || ch->fd[0] < 0) return fail("bad_request", "%s: the input of process %d is closed", op, (int)ch->pid);
  size_t pending = ch->in_len - ch->in_off;
  if (pending + n > PROCESS_INPUT_BUFFER_BYTES)
    return fail("busy", "%s: process %d has %zu bytes of input it has not read yet; retry", op, (int)ch->pid, pending);
  if (!in_append(ch, d, n)) return fail("internal", "%s: out of memory", op);
  child_write(ch);
  return NULL;
}

const char *op_input(struct conn *c, uint64_t id, const uint8_t *rec) {
  struct val d;
  const char *err = NULL;
  if (!rec_get(rec, "data", &d) || d.t != T_BYTES || d.n > MAX_INPUT_CHUNK_BYTES)
    return fail("bad_request", "input: `data` must be bytes, at most %d", MAX_INPUT_CHUNK_BYTES);
  struct child *ch = target(rec, "input", &err);
  if (!ch || (err = queue_input(ch, "input", d.p, d.n))) return err;
  reply_empty(c, id);
  return NULL;
}

/* A pipe is closed once its buffered input is written; a terminal gets its EOF character instead
 * (a pty's master has no write side of its own to close), as typing ^D would send. */
const char *op_input_close(struct conn *c, uint64_t id, const uint8_t *rec) {
  const char *err = NULL;
  struct child *ch = target(rec, "input.close", &err);
  if (!ch) return err;
  if (ch->pty) {
    struct termios t;
    uint8_t eof = 4;
    if (ch->fd[0] >= 0 && tcgetattr(ch->fd[0], &t) == 0 && t.c_cc[VEOF]) eof = t.c_cc[VEOF];
    if ((err = queue_input(ch, "input.close", &eof, 1))) return err;
  } else if (!ch->in_eof) {
    ch->in_eof = true;
    if (ch->fd[0] >= 0) child_write(ch); /* closes it now if nothing is waiting */
  }
  reply_empty(c, id);
  return NULL;
}

const char *op_resize(struct conn *c, uint64_t id, const uint8_t *rec) {
  int64_t cols, rows;
  const char *err = NULL;
  if (p_int(rec, "cols", 1, MAX_PTY_DIMENSION, &cols) != 1 || p_int(rec, "rows", 1, MAX_PTY_DIMENSION, &rows) != 1)
    return fail("bad_request", "resize: `cols` and `rows` must be integers 1..%d", MAX_PTY_DIMENSION);
  struct child *ch = target(rec, "resize", &err);
  if (!ch) return err;
  int fd = ch->fd[0] >= 0 ? ch->fd[0] : ch->fd[1];
  if (!ch->pty) return fail("bad_request", "resize: process %d has no terminal (start it with `pty`)", (int)ch->pid);
  if (fd < 0) return fail("bad_request", "resize: the terminal of process %d is closed", (int)ch->pid);
  struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
  if (ioctl(fd, TIOCSWINSZ, &ws) != 0) return fail("io_error", "resize: TIOCSWINSZ: %s", strerror(errno));
  reply_empty(c, id);
  return NULL;
}
