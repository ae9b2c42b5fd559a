/*
 * forkd-agent: the in-guest agent (protocol version 3, docs/PROTOCOL.md). Shared declarations
 * of its five files (built together: gcc ... *.c):
 *   forkd-agent.c  main, options, the poll loop, host connections (port or socket), dispatch
 *   agent-wire.c   byte queues, frame input, COBS, records (read/validate/write), SHA-256
 *   agent-exec.c   exec (foreground/background), wait, kill, the eval workers
 *   agent-tty.c    interactive processes: pseudo-terminals, input, input.close, resize
 *   agent-files.c  files.read/write/list/stat/remove/mkdir/rename
 * One thread, one poll() loop, non-blocking fds; every buffer is bounded by the limits below.
 */
#ifndef FORKD_AGENT_H
#define FORKD_AGENT_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifndef FORKD_VERSION
#define FORKD_VERSION "0.1.0"
#endif
#define AGENT_PROTOCOL_VERSION 3
#define AGENT_PORT_NAME "org.forkd.agent"

/* Mirrors of src/protocol/limits.ts, same names (test/unit/guest-session.test.ts compares). */
#define MAX_FRAME_BYTES (1024 * 1024)
#define FILE_CHUNK_BYTES (256 * 1024)
#define STREAM_CHUNK_BYTES (64 * 1024)
#define MAX_CONCURRENT_REQUESTS 64
#define BACKGROUND_OUTPUT_BYTES (1024 * 1024)
#define MAX_BACKGROUND_PROCESSES 128
#define MAX_EXEC_STDIN_BYTES (512 * 1024)
#define DEFAULT_EXEC_TIMEOUT_MS 60000
#define MAX_EXEC_TIMEOUT_MS (24 * 60 * 60 * 1000)
#define DEFAULT_WAIT_TIMEOUT_MS 30000
#define MAX_EVAL_CODE_BYTES (512 * 1024)
#define DEFAULT_EVAL_TIMEOUT_MS 30000
#define MAX_FILE_BYTES (256 * 1024 * 1024)
#define MAX_PATH_BYTES 4096
#define MAX_LIST_ENTRIES 4096
#define MIN_IDENTITY_ENTROPY_BYTES 64
#define MAX_IDENTITY_ENTROPY_BYTES 4096
#define MAX_ERROR_MESSAGE_CHARS 4096
#define MAX_INPUT_CHUNK_BYTES (64 * 1024)
#define PROCESS_INPUT_BUFFER_BYTES (256 * 1024)
#define MAX_PTY_DIMENSION 1000

/* Agent-only bounds. */
#define OUTQ_HIGH (4 * 1024 * 1024)       /* stop reading child pipes / files / workers for a conn */
#define OUTQ_STOP (8 * 1024 * 1024)       /* stop reading (and parsing) the host's frames */
#define DRAIN_IDLE_MS 250                 /* output drain after the leader exits */
#define UPLOAD_IDLE_MS 60000              /* files.write abandoned without data this long */
#define WORKER_GRACE_MS 5000              /* forwarded request: its timeoutMs + this */
#define WARM_PYTHON_TIMEOUT_MS 300000     /* warm.python has no timeoutMs (imports are slow under TCG) */
#define MAX_LISTEN_CONNS 8                /* --listen only: concurrent test connections */
#define BODY_CAP (MAX_FRAME_BYTES - MAX_FRAME_BYTES / 254 - 16) /* a body that always encodes in a frame */

enum kind { K_REQUEST = 1, K_DATA = 2, K_END = 3, K_STDOUT = 0x10, K_STDERR = 0x11, K_FILEDATA = 0x12,
            K_PTY = 0x13, K_STARTED = 0x14, K_OK = 0x20, K_ERROR = 0x21 };
enum tag { T_NULL, T_FALSE, T_TRUE, T_INT, T_FLOAT, T_STRING, T_BYTES, T_LIST, T_RECORD };
enum op { OP_EXEC, OP_WAIT, OP_EVAL, OP_READ, OP_WRITE };

/* ---- agent-wire.c */
struct buf { uint8_t *p; size_t off, len, cap; }; /* byte queue: live bytes are p[off .. off+len) */
uint8_t *buf_room(struct buf *b, size_t n);    /* room for n more bytes (caller adds to len), NULL if OOM */
void buf_drop(struct buf *b, size_t n);        /* consume n bytes from the front */
void buf_free(struct buf *b);

/* Frame input: bytes read from an fd, split on 0x00, never more than one frame buffered. */
struct inbuf {
  uint8_t *p; size_t start, len, cap, scan;
  size_t over;                 /* >0: skipping an oversized frame, bytes so far */
  uint8_t head[16]; size_t headlen;
};
#define IN_READ_CHUNK (64 * 1024)
uint8_t *in_room(struct inbuf *in, size_t *n); /* where to read() to, and how much */
/* Next complete frame: 1 = frame (f, n: COBS bytes, no delimiter), 2 = oversized (head/headlen,
 * *n = its size), 0 = need more bytes. Empty frames are skipped. */
int in_next(struct inbuf *in, uint8_t **f, size_t *n);
void in_free(struct inbuf *in);

bool cobs_append(struct buf *out, const uint8_t *a, size_t an, const uint8_t *b, size_t bn);
long cobs_decode(uint8_t *f, size_t n);                             /* in place; -1 if invalid */
size_t cobs_peek(const uint8_t *f, size_t n, uint8_t *out, size_t want); /* first bytes of the body */

/* Records. Validation first (chk_record), then unchecked access. */
struct val { uint8_t t; const uint8_t *p; uint32_t n; int64_t i; double f; };
extern const char *wire_why;
const uint8_t *chk_record(const uint8_t *p, const uint8_t *end, int depth);
const uint8_t *val_at(const uint8_t *p, struct val *v);     /* p at a tag; returns the end */
bool rec_get(const uint8_t *rec, const char *key, struct val *v);
const uint8_t *rec_field(const uint8_t *p, const uint8_t **key, size_t *keylen, struct val *v);

/* The reply writer: one static body at a time (kind, id, a record with nested lists/records). */
struct w { uint8_t *p; size_t len, cap; bool overflow; int depth; size_t at[6]; uint32_t n[6]; bool list[6]; };
struct w *w_begin(uint8_t kind, uint64_t id);  /* header + top record opened */
void w_null(struct w *w, const char *k);
void w_bool(struct w *w, const char *k, bool v);
void w_int(struct w *w, const char *k, int64_t v);
void w_float(struct w *w, const char *k, double v);
void w_str(struct w *w, const char *k, const char *s);
void w_strn(struct w *w, const char *k, const void *s, size_t n);
void w_open_list(struct w *w, const char *k);
void w_open_rec(struct w *w, const char *k);
void w_close(struct w *w);
void w_rollback(struct w *w, size_t len);     /* forget the last item of the open list */
bool w_end(struct w *w);                      /* closes the top record; false if it overflowed */

struct sha256 { uint32_t h[8]; uint64_t bytes; uint8_t blk[64]; size_t used; };
void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const uint8_t *d, size_t n);
void sha256_hex(struct sha256 *s, char out[65]);
void hex(const uint8_t *d, size_t n, char *out);

/* ---- forkd-agent.c */
struct req;
struct conn {
  struct conn *next;
  int fd; bool port, up, dead;
  struct inbuf in; struct buf out;
  struct req *reqs[MAX_CONCURRENT_REQUESTS]; int nreqs;
};

struct ring { uint8_t *p; size_t start, len, cap; bool dropped; };

struct child {
  struct child *next;
  pid_t pid; int fd[3];        /* [0] stdin (ours to write), [1] stdout, [2] stderr; pty: [0] and [1] the master */
  uint8_t *in; size_t in_len, in_off; /* input not yet written (at most PROCESS_INPUT_BUFFER_BYTES) */
  bool bg, exited, done, dead, timed_out;
  bool pty, keep_in, in_eof;   /* keep_in: stdin stays open for `input` until `input.close` (in_eof) */
  int status; uint64_t seq;
  int64_t start_ns, deadline_ms, last_ms; double duration_ms;
  struct req *req;             /* foreground: the exec request; NULL once cancelled */
  struct ring ring[2];         /* background: newest output */
};

struct worker;
struct req {
  struct conn *conn; uint64_t id; enum op op;
  int64_t deadline_ms;         /* wait timeout, upload idle; 0 = none */
  struct child *child;         /* exec */
  pid_t pid;                   /* wait */
  int fd; uint64_t size, expect; unsigned mode; char *path, *tmp; struct sha256 sha; /* files */
  struct worker *worker; uint8_t *body; size_t body_len; int64_t timeout_ms; struct req *qnext; /* eval */
};

struct worker {
  const char *name, *bin, *script, *missing_hint;
  pid_t pid; int to, from;
  struct buf out; struct inbuf in;
  bool busy; uint64_t cur_id; struct req *cur; /* busy && !cur: a cancelled request's reply is dropped */
  int64_t deadline_ms;
  struct req *qhead, *qtail;
};

extern struct conn *g_conns;  /* every host connection (the port's, or --listen's) */
extern char g_msg[1024];       /* the message of the error a handler returns */
extern struct worker g_js, g_py;
extern char **environ;
int64_t now_ms(void);
int64_t now_ns(void);
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void debugmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *fail(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void send_raw(struct conn *c, uint8_t kind, uint64_t id, const uint8_t *d, size_t n);
void send_w(struct conn *c, struct w *w);
void send_error(struct conn *c, uint64_t id, const char *code, const char *msg);
struct req *req_new(struct conn *c, uint64_t id, enum op op);
void req_fail(struct req *r, const char *code, const char *msg);
void req_end(struct req *r);
int p_str(const uint8_t *rec, const char *key, struct val *v); /* 0 absent, 1 ok, -1 wrong type */
int p_int(const uint8_t *rec, const char *key, int64_t min, int64_t max, int64_t *out);
int p_bool(const uint8_t *rec, const char *key, bool *out);
char *cstr(const struct val *v);  /* malloc'd copy, NULL if it holds a 0x00 */
const char *p_path(const uint8_t *rec, const char *op, char out[MAX_PATH_BYTES + 1]);
/* p_path for another key (files.rename's `from` and `to`). */
const char *p_path_key(const uint8_t *rec, const char *op, const char *key, char out[MAX_PATH_BYTES + 1]);
const char *errno_code(int e);

/* ---- agent-exec.c */
extern struct child *g_children;
const char *op_exec(struct conn *c, uint64_t id, const uint8_t *rec);
const char *op_wait(struct conn *c, uint64_t id, const uint8_t *rec);
const char *op_kill(struct conn *c, uint64_t id, const uint8_t *rec);
const char *op_eval(struct conn *c, uint64_t id, const uint8_t *rec, const uint8_t *body, size_t n, bool warm);
void warm_workers(bool js, bool python, bool *js_up, bool *py_up);
void reseed_workers(void);
void child_read(struct child *ch, int k);
void child_write(struct child *ch);
bool child_wants_write(const struct child *ch);
bool child_blocked(struct child *ch);
struct child *find_live(int64_t pid); /* a running process (foreground or background) */
void worker_read(struct worker *w);
void worker_write(struct worker *w);
bool worker_blocked(struct worker *w);
void exec_reaped(pid_t pid, int status);
void exec_timers(int64_t now, int64_t *next);
void exec_req_end(struct req *r);
void exec_kill_all(void);
int signal_number(const char *name);

/* ---- agent-tty.c */
int pty_open(int cols, int rows, char *slave, size_t slavelen); /* the master (non-blocking), or -1 (errno) */
const char *op_input(struct conn *c, uint64_t id, const uint8_t *rec);
const char *op_input_close(struct conn *c, uint64_t id, const uint8_t *rec);
const char *op_resize(struct conn *c, uint64_t id, const uint8_t *rec);

/* ---- agent-files.c */
const char *op_files(struct conn *c, uint64_t id, const char *op, const uint8_t *rec);
void files_data(struct req *r, const uint8_t *d, size_t n);
void files_end(struct req *r, const uint8_t *rec);
bool files_pump(struct conn *c);  /* true if a read can go on at once */
void files_req_end(struct req *r);

#endif
