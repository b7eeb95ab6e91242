/* file.h - state files written so that a crash leaves the old or the new one, never a
 * mix: PATH.tmp written, fsynced, renamed over PATH, the directory fsynced; and the
 * lock that keeps a state dir to one daemon. */
#ifndef MESHVPN_FILE_H
#define MESHVPN_FILE_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Writes all of p, retrying short writes and EINTR. 0 or -errno. */
int file_write_all(int fd, const void *p, size_t len);

/* Replaces path with the pieces of iov one after the other, mode `mode` whatever the umask. With keep_fd,
 * the file stays open for appending and *keep_fd gets it; else it is closed. 0 or -errno
 * (the old file is then untouched and no .tmp is left). */
int file_replace(const char *path, const struct iovec *iov, int iovcnt, mode_t mode, int *keep_fd);

/* Takes an exclusive flock on DIR/NAME (created 0600), so that one daemon at a time
 * runs on a state dir. The open descriptor holds the lock until closed (or the process
 * ends); -EBUSY when another process holds it, else -errno. */
int file_lock_dir(const char *dir, const char *name);

/* A server holds a descriptor per client: allow as many as the system lets us. */
void file_raise_nofile(void);
/* Raises the soft descriptor limit to want (no further than the hard limit), for a
 * daemon that caps its connections: never more than it needs. */
void file_raise_nofile_to(unsigned long want);

#endif
