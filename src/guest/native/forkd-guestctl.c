/*
 * forkd-guestctl: the two things the guest agent needs that Node cannot do (no ioctl, no
 * clock_settime). Built static (gcc -static -Os) so it runs in any guest image.
 *
 *   forkd-guestctl entropy          stdin: 64..4096 bytes from the host CSPRNG. Credits them
 *                                   to the input pool (RNDADDENTROPY) and forces a CRNG reseed
 *                                   (RNDRESEEDCRNG). Without the reseed, Linux 6.1 children
 *                                   forked from one snapshot keep the same per-cpu CRNG state
 *                                   and read identical bytes from /dev/urandom.
 *   forkd-guestctl settime <ms>     clock_settime(CLOCK_REALTIME) to <ms> since the epoch: a
 *                                   restored child wakes with the clock of the snapshot.
 *   forkd-guestctl serve            the same two as a resident line protocol on stdin/stdout:
 *                                   "entropy <hex>" / "settime <ms>" / "identity <hex> <ms>"
 *                                   (both, in that order: one round trip per restored child)
 *                                   -> "ok" or "err <why>".
 *                                   The agent starts it before the snapshot, so a restored
 *                                   child's identity needs no fork+exec (under TCG, forking the
 *                                   Node agent costs ~0.5 s; a write to a pipe costs nothing).
 *
 * Exit status: 0 ok, 1 system call failed (message on stderr), 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define MIN_ENTROPY 64
#define MAX_ENTROPY 4096

static int usage(void) {
  fprintf(stderr, "usage: forkd-guestctl entropy < bytes | settime <unix-ms> | serve\n");
  return 2;
}

struct entropy_req {
  struct rand_pool_info info;
  unsigned char buf[MAX_ENTROPY + 1];
};

/* Credits `len` bytes already in req->buf and forces a CRNG reseed. NULL or an error text. */
static const char *apply_entropy(struct entropy_req *req, size_t len) {
  static char err[160];
  int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, sizeof(err), "open /dev/urandom: %s", strerror(errno));
    return err;
  }
  req->info.entropy_count = (int)(len * 8);
  req->info.buf_size = (int)len;
  const char *what = NULL;
  if (ioctl(fd, RNDADDENTROPY, &req->info) != 0) what = "ioctl RNDADDENTROPY";
  else if (ioctl(fd, RNDRESEEDCRNG) != 0) what = "ioctl RNDRESEEDCRNG";
  if (what) snprintf(err, sizeof(err), "%s: %s", what, strerror(errno));
  close(fd);
  return what ? err : NULL;
}

static const char *apply_settime(const char *arg) {
  static char err[160];
  char *end = NULL;
  errno = 0;
  long long ms = strtoll(arg, &end, 10);
  if (errno != 0 || end == arg || (*end != '\0' && *end != '\n') || ms < 0) return "settime: bad milliseconds";
  struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
  if (clock_settime(CLOCK_REALTIME, &ts) != 0) {
    snprintf(err, sizeof(err), "clock_settime: %s", strerror(errno));
    return err;
  }
  return NULL;
}

static int entropy(void) {
  static struct entropy_req req;
  size_t len = 0;
  for (;;) {
    ssize_t n = read(0, req.buf + len, sizeof(req.buf) - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      fprintf(stderr, "forkd-guestctl: read stdin: %s\n", strerror(errno));
      return 1;
    }
    if (n == 0) break;
    len += (size_t)n;
    if (len > MAX_ENTROPY) {
      fprintf(stderr, "forkd-guestctl: more than %d entropy bytes\n", MAX_ENTROPY);
      return 2;
    }
  }
  if (len < MIN_ENTROPY) {
    fprintf(stderr, "forkd-guestctl: %zu entropy bytes, need at least %d\n", len, MIN_ENTROPY);
    return 2;
  }
  const char *err = apply_entropy(&req, len);
  if (err) {
    fprintf(stderr, "forkd-guestctl: %s\n", err);
    return 1;
  }
  return 0;
}

static int settime(const char *arg) {
  const char *err = apply_settime(arg);
  if (err) {
    fprintf(stderr, "forkd-guestctl: %s\n", err);
    return strncmp(err, "settime:", 8) == 0 ? 2 : 1;
  }
  return 0;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Resident mode: one command per line, one answer per line, until stdin closes. */
static int serve(void) {
  static char line[2 * MAX_ENTROPY + 64];
  static struct entropy_req req;
  setvbuf(stdout, NULL, _IOLBF, 0);
  while (fgets(line, sizeof(line), stdin)) {
    const char *err = NULL;
    int is_identity = strncmp(line, "identity ", 9) == 0;
    if (is_identity || strncmp(line, "entropy ", 8) == 0) {
      size_t len = 0;
      const char *p = line + (is_identity ? 9 : 8);
      while (len <= MAX_ENTROPY && hexval(p[0]) >= 0 && hexval(p[1]) >= 0) {
        req.buf[len++] = (unsigned char)(hexval(p[0]) * 16 + hexval(p[1]));
        p += 2;
      }
      const char *rest = is_identity && *p == ' ' ? p + 1 : NULL;
      if (is_identity ? rest == NULL : (*p != '\n' && *p != '\0')) err = "entropy: expected lowercase hex";
      else if (len < MIN_ENTROPY || len > MAX_ENTROPY) err = "entropy: need 64..4096 bytes";
      else err = apply_entropy(&req, len);
      memset(req.buf, 0, sizeof(req.buf));
      if (!err && rest) err = apply_settime(rest);
    } else if (strncmp(line, "settime ", 8) == 0) {
      err = apply_settime(line + 8);
    } else {
      err = "unknown command";
    }
    if (err) printf("err %s\n", err);
    else printf("ok\n");
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "entropy") == 0) return entropy();
  if (argc == 3 && strcmp(argv[1], "settime") == 0) return settime(argv[2]);
  if (argc == 2 && strcmp(argv[1], "serve") == 0) return serve();
  return usage();
}
