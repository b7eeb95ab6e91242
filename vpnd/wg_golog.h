/* wg_golog.h - the thread that relays wireguard-go's output to log.h (wg_golog.c), for
 * wg_go.c, which starts and stops wireguard-go around it. */
#ifndef VPND_WG_GOLOG_H
#define VPND_WG_GOLOG_H

#include <sys/types.h>

struct wg_golog;

/* Starts the thread reading a new pipe; *wfd is its write end, for the child's stdout
 * and stderr (close it once the child has it: the child's exit is then the end of the
 * output). Lines are logged with source=wireguard-go ifname=IFNAME. */
int wg_golog_start(const char *ifname, struct wg_golog **out, int *wfd);
/* The child that writes to it, set before wg_golog_ready: the end of its output while it
 * is meant to run is logged as "wireguard-go exited" with its status. pidfd -1: none. */
void wg_golog_child(struct wg_golog *o, pid_t pid, int pidfd);
/* Its socket is up: its ERROR and plain lines are warnings from now on (they were fatal
 * while it started), and the end of its output is news. */
void wg_golog_ready(struct wg_golog *o);
/* We stop it: its exit is no news. NULL ok. */
void wg_golog_stopping(struct wg_golog *o);
/* Closes fd on the thread, for a descriptor slow to close (inotify waits for an RCU grace
 * period): the loop thread must not wait. o NULL: closes it now. fd -1: nothing. */
void wg_golog_close_later(struct wg_golog *o, int fd);
/* Ends the thread once the child is gone: it logs what is left in the pipe, the counts
 * and dropped lines still due, then exits; o is freed. NULL ok. */
void wg_golog_stop(struct wg_golog *o);

#endif
