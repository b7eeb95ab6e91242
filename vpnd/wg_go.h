/* wg_go.h - wireguard-go as a child process of ours (wg_go.c), for the userspace backend
 * (wg_uapi.c), which then speaks to it over its UAPI socket. */
#ifndef VPND_WG_GO_H
#define VPND_WG_GO_H

struct wg_go;

/* Runs wireguard-go -f IFNAME ($MESHVPN_WIREGUARD_GO, else from $PATH) in the foreground,
 * with PR_SET_PDEATHSIG and its output logged by wg_golog.c, and waits until its socket
 * sock_path accepts. -ENOENT: not installed; -ECHILD: it exited (its last lines are logged
 * first); -ETIMEDOUT: the socket did not come up in 5 s. */
int wg_go_start(const char *ifname, const char *sock_path, struct wg_go **out);
/* SIGTERM, then reaps it, woken by its exit (SIGKILL after 3 s); removes the socket a
 * signal kept it from removing; ends the log thread; frees go. NULL ok. */
void wg_go_stop(struct wg_go *go);

#endif
