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
  fprintf(stderr, "usage: forkd-guestctl entropy < bytes | forkd-guestctl settime <unix-ms>\n");
  return 2;
}

static int entropy(void) {
  struct {
    struct rand_pool_info info;
    unsigned char buf[MAX_ENTROPY + 1];
  } req;
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
  int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "forkd-guestctl: open /dev/urandom: %s\n", strerror(errno));
    return 1;
  }
  req.info.entropy_count = (int)(len * 8);
  req.info.buf_size = (int)len;
  if (ioctl(fd, RNDADDENTROPY, &req.info) != 0) {
    fprintf(stderr, "forkd-guestctl: ioctl RNDADDENTROPY: %s\n", strerror(errno));
    return 1;
  }
  if (ioctl(fd, RNDRESEEDCRNG) != 0) {
    fprintf(stderr, "forkd-guestctl: ioctl RNDRESEEDCRNG: %s\n", strerror(errno));
    return 1;
  }
  close(fd);
  return 0;
}

static int settime(const char *arg) {
  char *end = NULL;
  errno = 0;
  long long ms = strtoll(arg, &end, 10);
  if (errno != 0 || end == arg || *end != '\0' || ms < 0) {
    fprintf(stderr, "forkd-guestctl: settime: bad milliseconds '%s'\n", arg);
    return 2;
  }
  struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
  if (clock_settime(CLOCK_REALTIME, &ts) != 0) {
    fprintf(stderr, "forkd-guestctl: clock_settime: %s\n", strerror(errno));
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "entropy") == 0) return entropy();
  if (argc == 3 && strcmp(argv[1], "settime") == 0) return settime(argv[2]);
  return usage();
}
