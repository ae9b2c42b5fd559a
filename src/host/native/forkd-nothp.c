/*
 * forkd-nothp: runs a program with transparent huge pages disabled for it and its children
 * (prctl PR_SET_THP_DISABLE is inherited across fork and kept across execve).
 *
 *   forkd-nothp PROGRAM [ARG...]
 *
 * Why: QEMU asks for huge pages on its TCG translation buffer (madvise in tcg/region.c), and
 * on a host with THP "madvise" every forked child then holds ~6 MiB of 2 MiB pages it barely
 * uses (measured: PSS per idle child 22.7 -> 20.0 MiB at N=10, bench/results/child-tuning.md).
 * No privilege is needed; a failed prctl is reported and the program runs anyway.
 */
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: forkd-nothp PROGRAM [ARG...]\n");
    return 2;
  }
  if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0) perror("forkd-nothp: prctl(PR_SET_THP_DISABLE)");
  execvp(argv[1], argv + 1);
  perror("forkd-nothp: exec");
  return 127;
}
