/* File descriptor I/O that every part of the tree needs, on libc alone:
 * whole writes and reads in spite of EINTR and short counts, a file's
 * size, and the clock that timeouts use. */
#ifndef Q2S_COMMON_FDIO_H
#define Q2S_COMMON_FDIO_H

#include <stddef.h>
#include <stdint.h>

#include "common/cancel.h"

/* Writes all length bytes of buf to fd: 0, or -1 with errno.  Short writes
 * and EINTR are retried; so is EAGAIN, once poll(2) says that fd (a
 * non-blocking descriptor) takes more.  cancel may be NULL; otherwise it
 * is looked at before every write and after every EINTR, as a signal that
 * stops a write part way makes it return what it wrote rather than fail:
 * once it says so, -1 with errno ECANCELED. */
int q2s_write_all(int fd, const void *buf, size_t length,
                  const struct q2s_cancel *cancel);

/* Waits in poll(2) until fd is ready for events (POLLIN, POLLOUT...),
 * with no timeout; the same cancel as above, also looked at every 100 ms
 * of waiting, as a cancel from another thread interrupts nothing.  0, or
 * -1 with errno. */
int q2s_wait_fd(int fd, short events,
                const struct q2s_cancel *cancel);

/* pread(2) of length bytes at offset into buf, retried on EINTR and short
 * reads.  0 when all were read; 1 when the end of the file came first;
 * -1 with errno on error.  done, if not NULL, gets how many bytes were
 * read in any case, which tells where it stopped. */
int q2s_pread_all(int fd, void *buf, size_t length, uint64_t offset,
                  size_t *done);

/* pwrite(2) of all length bytes of buf at offset, retried on EINTR and
 * short writes: 0, or -1 with errno. */
int q2s_pwrite_all(int fd, const void *buf, size_t length, uint64_t offset);

/* The size of an open regular file or block device: 0, or -1 with errno. */
int q2s_fd_size(int fd, uint64_t *size);

/* A new file in the directory dir, open for reading and writing, that no
 * name reaches: it is gone once closed, whatever happens to the process.
 * The descriptor, or -1 with errno. */
int q2s_open_unlinked(const char *dir);

/* CLOCK_MONOTONIC in milliseconds, for timeouts. */
uint64_t q2s_now_milliseconds(void);

#endif
