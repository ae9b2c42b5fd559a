/*
 * files.read | write | list | stat | remove | mkdir | rename, with the result shapes and error codes of
 * the Node agent (ENOENT not_found, EEXIST exists, EACCES/EPERM permission_denied, ...).
 * A read streams FILE_CHUNK_BYTES frames as the host takes them (one chunk of memory for any
 * size); a write goes to a temp file in the target's directory, is checked against the
 * announced size and the host's sha256, synced and renamed over the target: readers see the
 * old file or the new one, and a failed or cancelled upload leaves nothing behind.
 */
#include "agent.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* files.list leaves room in its reply frame for the envelope; entries past it: `truncated`. */
#define LIST_BUDGET_BYTES (MAX_FRAME_BYTES - 16 * 1024)

static void w_entry_fields(struct w *w, const char *name, const struct stat *st) {
  const char *type = S_ISREG(st->st_mode) ? "file" : S_ISDIR(st->st_mode) ? "dir" : S_ISLNK(st->st_mode) ? "symlink" : "other";
  w_str(w, "name", name);
  w_str(w, "type", type);
  w_int(w, "size", st->st_size);
  w_int(w, "mode", st->st_mode & 0177777);
  w_float(w, "mtimeMs", (double)st->st_mtim.tv_sec * 1000.0 + (double)st->st_mtim.tv_nsec / 1e6);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static const char *list(struct conn *c, uint64_t id, const char *path) {
  DIR *d = opendir(path);
  if (!d) return fail(errno_code(errno), "files.list %s: %s", path, strerror(errno));
  char **names = malloc(MAX_LIST_ENTRIES * sizeof(char *));
  size_t n = 0;
  bool truncated = false;
  struct dirent *e;
  while (names && (e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (n == MAX_LIST_ENTRIES) { /* the first 4096 the kernel returns, sorted */
      truncated = true;
      break;
    }
    if (!(names[n] = strdup(e->d_name))) break;
    n++;
  }
  if (!names) {
    closedir(d);
    return fail("internal", "files.list: out of memory");
  }
  qsort(names, n, sizeof(char *), by_name);
  struct w *w = w_begin(K_OK, id);
  w_open_list(w, "entries");
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) != 0) continue; /* removed meanwhile */
    size_t at = w->len;
    w_open_rec(w, NULL);
    w_entry_fields(w, names[i], &st);
    w_close(w);
    if (w->overflow || w->len > LIST_BUDGET_BYTES) {
      w_rollback(w, at);
      truncated = true;
      break;
    }
  }
  w_close(w);
  w_bool(w, "truncated", truncated);
  send_w(c, w);
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  closedir(d);
  return NULL;
}

static const char *stat_op(struct conn *c, uint64_t id, const char *path) {
  struct stat st;
  char name[MAX_PATH_BYTES + 1];
  if (lstat(path, &st) != 0) return fail(errno_code(errno), "files.stat %s: %s", path, strerror(errno));
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/') n--; /* basename: "/a/b/" -> "b", "/" -> "/" */
  size_t s = n;
  while (s > 0 && path[s - 1] != '/') s--;
  if (n - s == 0) strcpy(name, "/");
  else {
    memcpy(name, path + s, n - s);
    name[n - s] = 0;
  }
  struct w *w = w_begin(K_OK, id);
  w_entry_fields(w, name, &st);
  send_w(c, w);
  return NULL;
}

static int g_rm_errno;
static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  if (remove(p) == 0) return 0;
  g_rm_errno = errno;
  return -1;
}

static int mkdir_parents(char *path) {
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    int rc = mkdir(path, 0777);
    *p = '/';
    if (rc != 0 && errno != EEXIST) return -1;
  }
  struct stat st;
  if (mkdir(path, 0777) == 0) return 0;
  if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
  errno = errno == EEXIST ? EEXIST : errno;
  return -1;
}

static const char *read_start(struct conn *c, uint64_t id, const char *path) {
  struct stat st;
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC); /* O_NONBLOCK: a FIFO must not hang us */
  if (fd < 0) return fail(errno_code(errno), "files.read %s: %s", path, strerror(errno));
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return fail("bad_request", "files.read %s: not a regular file", path);
  }
  if (st.st_size > MAX_FILE_BYTES) {
    close(fd);
    return fail("too_large", "files.read %s: %lld bytes is over the %d-byte limit", path, (long long)st.st_size,
                MAX_FILE_BYTES);
  }
  struct req *r = req_new(c, id, OP_READ);
  if (!r) {
    close(fd);
    return fail("internal", "files.read: out of memory");
  }
  r->fd = fd;
  r->path = strdup(path);
  sha256_init(&r->sha);
  return NULL;
}

bool files_pump(struct conn *c) {
  static uint8_t buf[FILE_CHUNK_BYTES];
  bool more = false;
  for (int i = c->nreqs - 1; i >= 0; i--) {
    struct req *r = c->reqs[i];
    if (r->op != OP_READ) continue;
    if (c->out.len >= OUTQ_HIGH) return false; /* POLLOUT brings us back */
    ssize_t n = read(r->fd, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      more = true;
      continue;
    }
    if (n < 0) {
      snprintf(g_msg, sizeof(g_msg), "files.read %s: %s", r->path ? r->path : "", strerror(errno));
      req_fail(r, errno_code(errno), g_msg);
      continue;
    }
    if (n == 0) {
      char digest[65];
      sha256_hex(&r->sha, digest);
      struct w *w = w_begin(K_OK, r->id);
      w_int(w, "size", (int64_t)r->size);
      w_str(w, "sha256", digest);
      send_w(c, w);
      req_end(r);
      continue;
    }
    r->size += (uint64_t)n;
    if (r->size > MAX_FILE_BYTES) {
      snprintf(g_msg, sizeof(g_msg), "files.read %s: grew over the %d-byte limit while read", r->path ? r->path : "",
               MAX_FILE_BYTES);
      req_fail(r, "too_large", g_msg);
      continue;
    }
    sha256_update(&r->sha, buf, (size_t)n);
    send_raw(c, K_FILEDATA, r->id, buf, (size_t)n);
    more = true;
  }
  return more && c->out.len < OUTQ_HIGH;
}

static const char *write_start(struct conn *c, uint64_t id, const char *path, const uint8_t *rec) {
  int64_t size, mode = 0644;
  if (p_int(rec, "size", 0, MAX_FILE_BYTES, &size) != 1)
    return fail("bad_request", "files.write: `size` must be an integer 0..%d", MAX_FILE_BYTES);
  if (p_int(rec, "mode", 0, 07777, &mode) < 0) return fail("bad_request", "files.write: `mode` must be 0..0o7777");
  uint8_t rnd[6];
  char rhex[13], *tmp;
  if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd)) {
    int64_t t = now_ns() ^ ((int64_t)getpid() << 40);
    memcpy(rnd, &t, sizeof(rnd));
  }
  hex(rnd, sizeof(rnd), rhex);
  const char *slash = strrchr(path, '/');
  if (asprintf(&tmp, "%.*s/.%s.forkd-%s", (int)(slash - path), path, slash + 1, rhex) < 0)
    return fail("internal", "files.write: out of memory");
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
  if (fd < 0) {
    free(tmp);
    return fail(errno_code(errno), "files.write %s: %s", path, strerror(errno));
  }
  struct req *r = req_new(c, id, OP_WRITE);
  if (!r) {
    close(fd);
    unlink(tmp);
    free(tmp);
    return fail("internal", "files.write: out of memory");
  }
  r->fd = fd;
  r->tmp = tmp;
  r->path = strdup(path);
  r->expect = (uint64_t)size;
  r->mode = (unsigned)mode;
  r->deadline_ms = now_ms() + UPLOAD_IDLE_MS;
  sha256_init(&r->sha);
  return NULL;
}

void files_data(struct req *r, const uint8_t *d, size_t n) {
  r->deadline_ms = now_ms() + UPLOAD_IDLE_MS;
  if (r->size + n > r->expect) {
    snprintf(g_msg, sizeof(g_msg), "files.write %s: more than the announced %llu bytes", r->path,
             (unsigned long long)r->expect);
    return req_fail(r, "too_large", g_msg);
  }
  r->size += n;
  sha256_update(&r->sha, d, n);
  for (size_t off = 0; off < n;) {
    ssize_t k = write(r->fd, d + off, n - off);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      int e = k < 0 ? errno : EIO;
      snprintf(g_msg, sizeof(g_msg), "files.write %s: %s", r->path, strerror(e));
      return req_fail(r, errno_code(e), g_msg);
    }
    off += (size_t)k;
  }
}

void files_end(struct req *r, const uint8_t *rec) {
  struct val v;
  char digest[65];
  bool ok = p_str(rec, "sha256", &v) == 1 && v.n == 64;
  for (uint32_t i = 0; ok && i < 64; i++) ok = (v.p[i] >= '0' && v.p[i] <= '9') || (v.p[i] >= 'a' && v.p[i] <= 'f');
  if (!ok) {
    snprintf(g_msg, sizeof(g_msg), "files.write %s: `sha256` must be 64 lowercase hex chars", r->path);
    return req_fail(r, "bad_request", g_msg);
  }
  if (r->size != r->expect) {
    snprintf(g_msg, sizeof(g_msg), "files.write %s: got %llu bytes, announced %llu", r->path,
             (unsigned long long)r->size, (unsigned long long)r->expect);
    return req_fail(r, "bad_request", g_msg);
  }
  sha256_hex(&r->sha, digest);
  if (memcmp(digest, v.p, 64) != 0) {
    snprintf(g_msg, sizeof(g_msg), "files.write %s: sha256 mismatch (got %s, host sent %.64s)", r->path, digest,
             (const char *)v.p);
    return req_fail(r, "bad_request", g_msg);
  }
  /* fchmod: open()'s mode went through the umask. */
  if (fchmod(r->fd, r->mode) != 0 || fdatasync(r->fd) != 0 || close(r->fd) != 0 || (r->fd = -1, 0) ||
      rename(r->tmp, r->path) != 0) {
    int e = errno;
    snprintf(g_msg, sizeof(g_msg), "files.write %s: %s", r->path, strerror(e));
    return req_fail(r, errno_code(e), g_msg);
  }
  r->fd = -1;
  free(r->tmp);
  r->tmp = NULL; /* renamed: nothing to clean up */
  struct w *w = w_begin(K_OK, r->id);
  w_int(w, "size", (int64_t)r->size);
  w_str(w, "sha256", digest);
  send_w(r->conn, w);
  req_end(r);
}

void files_req_end(struct req *r) {
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
  if (r->tmp) unlink(r->tmp);
  free(r->tmp);
  free(r->path);
  r->tmp = r->path = NULL;
}

/* rename(2): replaces a file at `to` (or an empty directory by a directory), never crosses file systems. */
static const char *rename_op(struct conn *c, uint64_t id, const uint8_t *rec) {
  static char from[MAX_PATH_BYTES + 1], to[MAX_PATH_BYTES + 1];
  const char *err = p_path_key(rec, "files.rename", "from", from);
  if (!err) err = p_path_key(rec, "files.rename", "to", to);
  if (err) return err;
  if (rename(from, to) != 0) return fail(errno_code(errno), "files.rename %s -> %s: %s", from, to, strerror(errno));
  send_w(c, w_begin(K_OK, id));
  return NULL;
}

const char *op_files(struct conn *c, uint64_t id, const char *op, const uint8_t *rec) {
  static char path[MAX_PATH_BYTES + 1];
  if (strcmp(op, "files.rename") == 0) return rename_op(c, id, rec);
  const char *err = p_path(rec, op, path);
  if (err) return err;
  if (strcmp(op, "files.read") == 0) return read_start(c, id, path);
  if (strcmp(op, "files.write") == 0) return write_start(c, id, path, rec);
  if (strcmp(op, "files.list") == 0) return list(c, id, path);
  if (strcmp(op, "files.stat") == 0) return stat_op(c, id, path);
  bool flag = false;
  int rc;
  if (strcmp(op, "files.remove") == 0) {
    struct stat st;
    if (p_bool(rec, "recursive", &flag) < 0) return fail("bad_request", "files.remove: `recursive` must be a bool");
    g_rm_errno = 0;
    if (lstat(path, &st) != 0) rc = -1;
    else if (!S_ISDIR(st.st_mode)) rc = unlink(path);
    else if (!flag) rc = rmdir(path);
    else if ((rc = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS)) != 0 && g_rm_errno) errno = g_rm_errno;
  } else {
    if (p_bool(rec, "parents", &flag) < 0) return fail("bad_request", "files.mkdir: `parents` must be a bool");
    rc = flag ? mkdir_parents(path) : mkdir(path, 0777);
  }
  if (rc != 0) return fail(errno_code(errno), "%s %s: %s", op, path, strerror(errno));
  struct w *w = w_begin(K_OK, id);
  send_w(c, w);
  return NULL;
}
