/* wg_go.c - wireguard-go as our child: found, spawned with its output going to the log
 * relay (wg_golog.c), waited for until its UAPI socket accepts, stopped and reaped. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "meshvpn/log.h"
#include "wg_go.h"
#include "wg_golog.h"
#include "wg_uapi.h"

#define START_TIMEOUT_MS 5000     /* wireguard-go up to its socket accepting */
#define STOP_TIMEOUT_MS 3000      /* SIGTERM to exit, then SIGKILL */

extern char **environ;

struct wg_go {
	char ifname[IFNAMSIZ];
	char sock_path[108];              /* its UAPI socket */
	pid_t pid;                        /* 0 when none */
	int pidfd;                        /* readable when it exits; -1 when none */
	struct wg_golog *log;             /* the thread logging its output, NULL when none */
};

/* An exit as a shell shows it: the code, or 128 + the signal. */
static int exit_status(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Ends the log thread: what wireguard-go wrote last is logged by then. */
static void stop_log(struct wg_go *go)
{
	wg_golog_stop(go->log);
	go->log = NULL;
}

/* The program to run: $MESHVPN_WIREGUARD_GO, else wireguard-go from $PATH. */
static int find_program(char *out, size_t size)
{
	const char *name = getenv("MESHVPN_WIREGUARD_GO"), *path, *p;

	if (!name || !*name)
		name = "wireguard-go";
	if (strchr(name, '/')) {
		if (strlen(name) >= size)
			return -ENAMETOOLONG;
		memcpy(out, name, strlen(name) + 1);
		return access(out, X_OK) ? -errno : 0;
	}
	path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (p = path; *p;) {
		size_t n = strcspn(p, ":");

		if (n && snprintf(out, size, "%.*s/%s", (int)n, p, name) < (int)size &&
		    !access(out, X_OK))
			return 0;
		p += n;
		if (*p == ':')
			p++;
	}
	return -ENOENT;
}

/* environ with WG_PROCESS_FOREGROUND=1 (wireguard-go stays our child, quietly) and, when
 * we log at debug and nobody set LOG_LEVEL, LOG_LEVEL=verbose (its DEBUG lines). */
static char **child_env(void)
{
	size_t n = 0, j = 0;
	int has_level = 0;
	char **env;

	while (environ && environ[n])
		n++;
	env = calloc(n + 3, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (!strncmp(environ[i], "LOG_LEVEL=", 10))
			has_level = 1;
		if (strncmp(environ[i], "WG_PROCESS_FOREGROUND=", 22))
			env[j++] = environ[i];
	}
	env[j++] = "WG_PROCESS_FOREGROUND=1";
	if (!has_level && log_get_level() >= LOG_DEBUG)
		env[j++] = "LOG_LEVEL=verbose";
	env[j] = NULL;
	return env;
}

/* Only async-signal-safe calls between fork and exec. */
static void child_exec(const char *prog, char *const argv[], char *const envp[], pid_t parent,
		       int errfd, int outfd)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD };
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;
	int err, fd;

	/* wireguard-go goes when we go, even when we die without wg_close. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) || getppid() != parent)
		_exit(126);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		dup2(fd, 0);
	/* Its stdout and stderr go to our log reader (wg_golog.c). */
	for (int t = 1; t <= 2; t++) {
		if (outfd != t)
			dup2(outfd, t);
		else
			fcntl(t, F_SETFD, 0);
	}
	execve(prog, argv, envp);
	err = errno;
	if (write(errfd, &err, sizeof(err)) < 0)
		_exit(127);
	_exit(127);
}

/* A pidfd turns readable the moment its process exits (Linux 5.3); -1 without. */
static int pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	return -1;
#endif
}

/* Waits for wireguard-go to exit and reaps it: woken by its pidfd as it exits, or,
 * without one, by polling waitpid in short steps. */
static int reap(struct wg_go *go, int timeout_ms, int *status)
{
	int64_t deadline = wg_uapi_now_ms() + timeout_ms;
	int delay = 2, use_pidfd = go->pidfd >= 0, rc;
	pid_t r;

	for (;;) {
		r = waitpid(go->pid, status, WNOHANG);
		if (r == go->pid || (r < 0 && errno == ECHILD))
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (wg_uapi_now_ms() >= deadline)
			return -ETIMEDOUT;
		if (use_pidfd) {
			rc = wg_uapi_wait_fd(go->pidfd, POLLIN, deadline);
			if (rc && rc != -ETIMEDOUT)
				use_pidfd = 0;
			continue;
		}
		sleep_ms(delay);
		delay = delay < 50 ? delay * 2 : 50;
	}
}

/* wireguard-go removes its socket as it stops, but not when a signal kills it first: a
 * SIGTERM that comes before it has its handler (right after it starts listening), or
 * SIGKILL. A socket nobody listens on is stale; one that accepts is not ours to take. */
static void remove_stale_socket(struct wg_go *go)
{
	int fd = wg_uapi_connect(go->sock_path);

	if (fd >= 0)
		close(fd);
	else if (fd == -ECONNREFUSED && !unlink(go->sock_path))
		log_debug("removed the socket wireguard-go left", "ifname=%s socket=%s", go->ifname,
			  go->sock_path);
}

static void stop_child(struct wg_go *go)
{
	int status = 0;

	if (go->pid > 0) {
		wg_golog_stopping(go->log);
		kill(go->pid, SIGTERM);
		if (reap(go, STOP_TIMEOUT_MS, &status)) {
			log_warn("wireguard-go did not stop, killing it", "ifname=%s pid=%d",
				 go->ifname, (int)go->pid);
			kill(go->pid, SIGKILL);
			while (waitpid(go->pid, &status, 0) < 0 && errno == EINTR)
				;
		}
		go->pid = 0;
		if (WIFSIGNALED(status))
			remove_stale_socket(go);
	}
	stop_log(go);
	if (go->pidfd >= 0)
		close(go->pidfd);
	go->pidfd = -1;
}

/* An inotify watch on the socket directory: wait_ready wakes up as the socket appears.
 * wireguard-go would create the directory (0755); creating it first lets us watch it.
 * -1 when that cannot be: wait_ready polls then. */
static int watch_socket_dir(void)
{
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	if (fd < 0)
		return -1;
	if (mkdir(WG_UAPI_DIR, 0755) && errno != EEXIST)
		log_debug("cannot create the wireguard-go socket directory",
			  "dir=%s error=\"%s\"", WG_UAPI_DIR, strerror(errno));
	if (inotify_add_watch(fd, WG_UAPI_DIR, IN_CREATE | IN_MOVED_TO) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Connects to the UAPI socket until it accepts, wireguard-go exits, or the deadline.
 * Woken by inotify (watch, from watch_socket_dir) as the socket appears and by the pidfd
 * as wireguard-go exits, it returns the moment either happens; it polls in short steps
 * only where those cannot tell (a socket there but not listening yet, no watch or no
 * pidfd). */
static int wait_ready(struct wg_go *go, int watch)
{
	int64_t deadline = wg_uapi_now_ms() + START_TIMEOUT_MS, left;
	struct pollfd pfd[2] = { { .fd = watch, .events = POLLIN },
				 { .fd = go->pidfd, .events = POLLIN } };
	int delay = 1, status, fd, rc, timeout;
	char events[4096];
	pid_t r;

	for (;;) {
		fd = wg_uapi_connect(go->sock_path);
		if (fd >= 0) {
			close(fd);
			rc = 0;
			break;
		}
		r = waitpid(go->pid, &status, WNOHANG);
		if (r == go->pid) {
			go->pid = 0;
			stop_log(go);         /* its last lines first: they say why */
			log_error("wireguard-go exited", "ifname=%s status=%d", go->ifname,
				  exit_status(status));
			rc = -ECHILD;
			break;
		}
		left = deadline - wg_uapi_now_ms();
		if (left <= 0) {
			rc = -ETIMEDOUT;
			break;
		}
		timeout = (int)left;
		if (pfd[0].fd < 0 || pfd[1].fd < 0 || fd != -ENOENT) {
			if (timeout > delay)
				timeout = delay;
			delay = delay < 50 ? delay * 2 : 50;
		}
		if (poll(pfd, 2, timeout) > 0 && (pfd[0].revents & POLLIN))
			while (read(pfd[0].fd, events, sizeof(events)) > 0)
				;
	}
	return rc;
}

static int spawn(struct wg_go *go)
{
	char prog[PATH_MAX];
	char *argv[] = { "wireguard-go", "-f", go->ifname, NULL };
	char **env = NULL;
	int pipefd[2] = { -1, -1 }, outfd = -1, err = 0, status, rc;
	pid_t parent = getpid(), pid;
	ssize_t n;

	rc = find_program(prog, sizeof(prog));
	if (rc)
		return rc;
	argv[0] = prog;
	env = child_env();
	if (!env)
		return -ENOMEM;
	if (pipe2(pipefd, O_CLOEXEC)) {
		rc = -errno;
		goto out;
	}
	rc = wg_golog_start(go->ifname, &go->log, &outfd);
	if (rc)
		goto out;
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto out;
	}
	if (pid == 0)
		child_exec(prog, argv, env, parent, pipefd[1], outfd);
	close(pipefd[1]);
	pipefd[1] = -1;
	/* The pipe closes on a successful exec; a failed one sends its errno. */
	do
		n = read(pipefd[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	if (n == sizeof(err)) {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		rc = err ? -err : -EIO;
		goto out;
	}
	go->pid = pid;
	go->pidfd = pidfd_of(pid);
	wg_golog_child(go->log, pid, go->pidfd);
out:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (outfd >= 0)
		close(outfd);         /* the child has it: its end is our end of output */
	if (rc)
		stop_log(go);
	free(env);
	return rc;
}

int wg_go_start(const char *ifname, const char *sock_path, struct wg_go **out)
{
	struct wg_go *go;
	int rc, watch;

	go = calloc(1, sizeof(*go));
	if (!go)
		return -ENOMEM;
	go->pidfd = -1;
	snprintf(go->ifname, sizeof(go->ifname), "%s", ifname);
	if (snprintf(go->sock_path, sizeof(go->sock_path), "%s", sock_path) >=
	    (int)sizeof(go->sock_path)) {
		rc = -ENAMETOOLONG;
		goto err_path;
	}
	/* Watching before it starts: the socket cannot appear unseen. */
	watch = watch_socket_dir();
	rc = spawn(go);
	if (rc)
		goto err_spawn;
	rc = wait_ready(go, watch);
	if (rc)
		goto err_ready;
	wg_golog_ready(go->log);
	wg_golog_close_later(go->log, watch);
	log_debug("wireguard-go started", "ifname=%s pid=%d socket=%s", go->ifname, (int)go->pid,
		  go->sock_path);
	*out = go;
	return 0;

err_ready:
	stop_child(go);
err_spawn:
	if (watch >= 0)
		close(watch);
err_path:
	free(go);
	return rc;
}

void wg_go_stop(struct wg_go *go)
{
	if (!go)
		return;
	stop_child(go);
	free(go);
}
