/* wg_golog.c - the thread that relays wireguard-go's stdout and stderr to log.h: lines
 * bounded, repeats counted, floods cut down to a rate, each line re-logged as logfmt. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "meshvpn/log.h"
#include "wg_golog.h"
#include "wg_uapi.h"

/* wireguard-go logs "LEVEL: (IFNAME) 2006/01/02 15:04:05 text" lines (Go's log package)
 * on stdout, and the Go runtime writes plain lines on stderr when it panics. Both come
 * to us through one pipe; a thread of ours reads it and re-emits each line through
 * log.h. A thread rather than a uv_pipe: the backend is not given the loop (wg_open has
 * none; wg_node and the tests run without one), and a thread never stalls the daemon's
 * loop, whatever and however much wireguard-go writes. Lines are bounded, repeats are
 * counted instead of shown, and a flood is cut down to a rate, but the last lines before
 * wireguard-go exits are always shown: they say why it failed. */

#define OUT_LINE_MAX 512        /* longer lines are cut (log.c quotes msg into 512 bytes) */
#define OUT_SEEN 32             /* distinct recent lines remembered to count repeats */
#define OUT_REPEAT_MS 60000     /* a line shows once per this, then with its count */
#define OUT_BURST 200           /* lines shown at once before the rate applies */
#define OUT_RATE 50             /* lines per second shown in a flood; the rest dropped */
#define OUT_TAIL 8              /* last dropped lines, shown later with the count */
#define OUT_CALM_MS 1000        /* no drops for this long: the flood has ended */
#define OUT_READS 16            /* reads of 4 KiB per wakeup: a flood cannot starve stop */
#define OUT_DRAIN_READS 256     /* after stop: what the dead child left in the pipe */
#define OUT_EXIT_WAIT_MS 1000   /* its output closed: how long to wait for its status */

struct out_line {
	enum log_level level;
	int cut;                       /* longer than OUT_LINE_MAX: the rest was dropped */
	char peer[24];                 /* its "peer(ab+/…wxyz) - " in front of msg */
	char msg[OUT_LINE_MAX + 1];
};

struct out_seen {
	struct out_line line;
	uint64_t hash;
	int64_t since, last;           /* window start, last occurrence (0: a free slot) */
	unsigned repeats;              /* occurrences not shown since the window began */
};

struct wg_golog {
	pthread_t thread;
	int rfd, stopfd;
	/* Written by the loop thread before ready is set (release), read by ours after. */
	pid_t pid;
	int pidfd;
	atomic_int ready;              /* its socket is up: its errors are no longer fatal */
	atomic_int stopping;           /* we stop it: its exit is no news */
	atomic_int closefd;            /* an fd slow to close (inotify) for us to close, or -1 */
	char ifname[IFNAMSIZ * 2 + 3]; /* quoted for logfmt */
	char buf[OUT_LINE_MAX + 1];    /* the line being read */
	size_t len;
	int skipping;                  /* in the rest of a cut line */
	struct out_seen seen[OUT_SEEN];
	int64_t tokens, refilled;      /* the rate: thousandths of a line, and since when */
	unsigned dropped;
	int64_t drop_last;
	struct out_line tail[OUT_TAIL];
	unsigned n_tail, tail_next;
};

static const struct {
	const char *prefix;
	enum log_level level;
} out_levels[] = {
	{ "DEBUG: ", LOG_DEBUG },
	{ "INFO: ", LOG_INFO },        /* wireguard-go before 2021 */
	{ "ERROR: ", LOG_ERROR },
};

/* "2006/01/02 15:04:05 " (log.Ldate | log.Ltime, maybe log.Lmicroseconds): its length,
 * 0 when s does not start with one. */
static size_t stamp_len(const char *s, size_t n)
{
	static const char pat[] = "dddd/dd/dd dd:dd:dd";
	size_t i;

	for (i = 0; pat[i]; i++)
		if (i >= n || (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i]))
			return 0;
	if (i < n && s[i] == '.')
		for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
	if (i == n)
		return i;
	return s[i] == ' ' ? i + 1 : 0;
}

/* n cut back to the last whole UTF-8 character, so that a cut line stays valid text. */
static size_t utf8_whole(const char *s, size_t n)
{
	size_t i = n, k = 0, need;
	unsigned char c;

	while (i > 0 && k < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80) {
		i--;
		k++;
	}
	if (!i)
		return n;
	c = (unsigned char)s[i - 1];
	if (c < 0xc0)
		return n;
	need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
	return need > k + 1 ? i - 1 : n;
}

/* One line into l: the level from its prefix, then "(IFNAME) ", the time stamp and
 * "peer(...) - " taken off. ERROR lines and plain ones (the Go runtime's) are errors while
 * it starts, when any of them is fatal, and warnings once it runs, when they mostly say
 * that a peer is out of reach ("Failed to send handshake initiation"). */
static void out_parse(const struct wg_golog *o, const char *s, size_t n, int cut,
		      struct out_line *l)
{
	const char *end;
	size_t k;
	int prefixed = 0;

	l->level = LOG_ERROR;
	for (size_t i = 0; i < sizeof(out_levels) / sizeof(out_levels[0]); i++) {
		k = strlen(out_levels[i].prefix);
		if (n >= k && !memcmp(s, out_levels[i].prefix, k)) {
			l->level = out_levels[i].level;
			s += k;
			n -= k;
			prefixed = 1;
			break;
		}
	}
	if (l->level == LOG_ERROR && atomic_load_explicit(&o->ready, memory_order_relaxed))
		l->level = LOG_WARN;
	if (prefixed && n > 2 && s[0] == '(') {
		end = memchr(s, ')', n < IFNAMSIZ + 1 ? n : IFNAMSIZ + 1);
		if (end && (size_t)(end - s) + 1 < n && end[1] == ' ') {
			n -= (size_t)(end - s) + 2;
			s = end + 2;
		}
	}
	if (prefixed) {
		k = stamp_len(s, n);
		s += k;
		n -= k;
	}
	l->peer[0] = 0;
	if (n > 5 && !memcmp(s, "peer(", 5)) {
		k = n - 5 < sizeof(l->peer) + 4 ? n - 5 : sizeof(l->peer) + 4;
		end = memmem(s + 5, k, ") - ", 4);
		if (end && (size_t)(end - s) - 5 < sizeof(l->peer)) {
			memcpy(l->peer, s + 5, (size_t)(end - s) - 5);
			l->peer[end - s - 5] = 0;
			n -= (size_t)(end - s) + 4;
			s = end + 4;
		}
	}
	memcpy(l->msg, s, n);
	l->msg[n] = 0;
	for (size_t i = 0; i < n; i++)
		if (!l->msg[i])
			l->msg[i] = '?';
	l->cut = cut;
}

static uint64_t out_hash(const struct out_line *l)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)l->level;

	for (const char *p = l->peer; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
	h = (h ^ 0xff) * 0x100000001b3ULL;
	for (const char *p = l->msg; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
	return h;
}

static int out_same(const struct out_line *a, const struct out_line *b)
{
	return a->level == b->level && !strcmp(a->peer, b->peer) && !strcmp(a->msg, b->msg);
}

static void out_show(const struct wg_golog *o, const struct out_line *l, unsigned repeats)
{
	char qpeer[sizeof(l->peer) * 2 + 3], peer[sizeof(qpeer) + 8] = "", more[32] = "";

	if (l->peer[0])
		snprintf(peer, sizeof(peer), " peer=%s", log_quote(l->peer, qpeer, sizeof(qpeer)));
	if (repeats)
		snprintf(more, sizeof(more), " repeated=%u", repeats);
	log_write(l->level, l->msg, "source=wireguard-go ifname=%s%s%s%s", o->ifname, peer,
		  l->cut ? " cut=true" : "", more);
}

/* How many lines were dropped, then the last of them. */
static void out_flush_drops(struct wg_golog *o)
{
	if (!o->dropped)
		return;
	if (o->dropped > o->n_tail)
		log_warn("wireguard-go log lines dropped", "source=wireguard-go ifname=%s dropped=%u",
			 o->ifname, o->dropped - o->n_tail);
	for (unsigned i = 0; i < o->n_tail; i++)
		out_show(o, &o->tail[(o->tail_next + OUT_TAIL - o->n_tail + i) % OUT_TAIL], 0);
	o->dropped = 0;
	o->n_tail = 0;
}

/* Shows l within the rate (a token bucket), else drops it, keeping the last few dropped
 * for later. After drops, l waits for tokens enough for those too: then the count, the
 * last dropped and l go out together, in their order. */
static void out_pass(struct wg_golog *o, const struct out_line *l, int64_t now)
{
	int64_t need = (o->dropped ? o->n_tail + 1 : 1) * 1000;

	o->tokens += (now - o->refilled) * OUT_RATE;
	if (o->tokens > OUT_BURST * 1000)
		o->tokens = OUT_BURST * 1000;
	o->refilled = now;
	if (o->tokens >= need) {
		o->tokens -= need;
		out_flush_drops(o);
		out_show(o, l, 0);
		return;
	}
	o->dropped++;
	o->drop_last = now;
	o->tail[o->tail_next] = *l;
	o->tail_next = (o->tail_next + 1) % OUT_TAIL;
	if (o->n_tail < OUT_TAIL)
		o->n_tail++;
}

/* A line seen within OUT_REPEAT_MS is counted, not shown; the count shows at the end of
 * the window (out_tick). The least recently seen line makes room for a new one. */
static void out_take(struct wg_golog *o, const struct out_line *l, int64_t now)
{
	struct out_seen *s, *victim = &o->seen[0];
	uint64_t h = out_hash(l);

	for (size_t i = 0; i < OUT_SEEN; i++) {
		s = &o->seen[i];
		if (s->last && s->hash == h && out_same(&s->line, l)) {
			s->last = now;
			if (now - s->since < OUT_REPEAT_MS) {
				s->repeats++;
				return;
			}
			if (s->repeats)
				out_show(o, &s->line, s->repeats);
			s->repeats = 0;
			s->since = now;
			out_pass(o, l, now);
			return;
		}
		if (s->last < victim->last)
			victim = s;
	}
	if (victim->repeats)
		out_show(o, &victim->line, victim->repeats);
	victim->line = *l;
	victim->hash = h;
	victim->since = victim->last = now;
	victim->repeats = 0;
	out_pass(o, l, now);
}

static void out_text(struct wg_golog *o, const char *s, size_t n, int cut)
{
	struct out_line l;

	while (n && s[n - 1] == '\r')
		n--;
	if (!n)
		return;
	out_parse(o, s, n, cut, &l);
	if (l.level > log_get_level())
		return;
	out_take(o, &l, wg_uapi_now_ms());
}

/* Splits what was read into lines of at most OUT_LINE_MAX bytes. */
static void out_feed(struct wg_golog *o, const char *p, size_t n)
{
	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t k = nl ? (size_t)(nl - p) : n;

		if (!o->skipping) {
			size_t room = OUT_LINE_MAX - o->len, take = k < room ? k : room;

			memcpy(o->buf + o->len, p, take);
			o->len += take;
			if (take < k) {
				out_text(o, o->buf, utf8_whole(o->buf, o->len), 1);
				o->len = 0;
				o->skipping = 1;
			}
		}
		if (!nl)
			return;
		if (!o->skipping)
			out_text(o, o->buf, o->len, 0);
		o->len = 0;
		o->skipping = 0;
		p = nl + 1;
		n -= k + 1;
	}
}

/* Reads at most reads times: 0 drained, 1 end of the output (or an error), 2 more. */
static int out_read(struct wg_golog *o, int reads)
{
	char chunk[4096];
	ssize_t n;

	for (int i = 0; i < reads; i++) {
		n = read(o->rfd, chunk, sizeof(chunk));
		if (n > 0)
			out_feed(o, chunk, (size_t)n);
		else if (n < 0 && errno == EAGAIN)
			return 0;
		else if (!(n < 0 && errno == EINTR))
			return 1;
	}
	return 2;
}

/* Shows what is due: repeat counts whose window ended, a flood that ended. Returns the
 * ms to the next due work, -1 for none. */
static int out_tick(struct wg_golog *o, int64_t now)
{
	int64_t next = -1, due;

	for (size_t i = 0; i < OUT_SEEN; i++) {
		struct out_seen *s = &o->seen[i];

		if (!s->repeats)
			continue;
		due = s->since + OUT_REPEAT_MS;
		if (due <= now) {
			out_show(o, &s->line, s->repeats);
			s->repeats = 0;
			s->since = now;
		} else if (next < 0 || due < next) {
			next = due;
		}
	}
	if (o->dropped) {
		due = o->drop_last + OUT_CALM_MS;
		if (due <= now)
			out_flush_drops(o);
		else if (next < 0 || due < next)
			next = due;
	}
	return next < 0 ? -1 : (int)(next - now);
}

/* Its output ended while it was meant to run: it died. Says how, without reaping it
 * (wg_go.c does that). */
static void out_exited(struct wg_golog *o)
{
	struct pollfd pfd[2] = { { .fd = o->pidfd, .events = POLLIN },
				 { .fd = o->stopfd, .events = POLLIN } };
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	while (poll(pfd, 2, OUT_EXIT_WAIT_MS) < 0 && errno == EINTR)
		;
	if (atomic_load(&o->stopping))
		return;
	if (waitid(o->pidfd >= 0 ? P_PIDFD : P_PID, o->pidfd >= 0 ? (id_t)o->pidfd : (id_t)o->pid,
		   &si, WEXITED | WNOHANG | WNOWAIT))
		si.si_pid = 0;
	if (si.si_pid)
		log_error("wireguard-go exited", "ifname=%s pid=%d status=%d", o->ifname, (int)o->pid,
			  si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status);
	else
		log_error("wireguard-go closed its output", "ifname=%s pid=%d", o->ifname,
			  (int)o->pid);
}

static void out_close_fd(struct wg_golog *o)
{
	int fd = atomic_exchange(&o->closefd, -1);

	if (fd >= 0)
		close(fd);
}

static void *out_main(void *arg)
{
	struct wg_golog *o = arg;
	struct pollfd pfd[2] = { { .fd = o->rfd, .events = POLLIN },
				 { .fd = o->stopfd, .events = POLLIN } };
	int end = 0, n;

	for (;;) {
		n = poll(pfd, 2, out_tick(o, wg_uapi_now_ms()));
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		if (pfd[0].revents && out_read(o, OUT_READS) == 1) {
			end = 1;
			break;
		}
		if (pfd[1].revents & POLLIN) {
			uint64_t v;

			if (read(o->stopfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				break;
			out_close_fd(o);
			if (!atomic_load(&o->stopping))
				continue;
			/* The child is gone: what it wrote is in the pipe, up to its end (unless
			 * something of its own still holds the pipe open). */
			for (int i = 0; i < OUT_DRAIN_READS / OUT_READS; i++)
				if (out_read(o, OUT_READS) != 2)
					break;
			break;
		}
	}
	out_close_fd(o);
	if (!o->skipping && o->len)
		out_text(o, o->buf, o->len, 0);
	for (size_t i = 0; i < OUT_SEEN; i++)
		if (o->seen[i].repeats)
			out_show(o, &o->seen[i].line, o->seen[i].repeats);
	out_flush_drops(o);
	if (end && atomic_load_explicit(&o->ready, memory_order_acquire) &&
	    !atomic_load(&o->stopping))
		out_exited(o);
	return NULL;
}

int wg_golog_start(const char *ifname, struct wg_golog **out, int *wfd)
{
	struct wg_golog *o;
	sigset_t all, old;
	int p[2], rc;

	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->pidfd = -1;
	atomic_init(&o->closefd, -1);
	o->tokens = OUT_BURST * 1000;
	o->refilled = wg_uapi_now_ms();
	log_quote(ifname, o->ifname, sizeof(o->ifname));
	if (pipe2(p, O_CLOEXEC)) {
		rc = -errno;
		goto err_pipe;
	}
	o->rfd = p[0];
	if (fcntl(o->rfd, F_SETFL, O_NONBLOCK)) {
		rc = -errno;
		goto err_event;
	}
	o->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (o->stopfd < 0) {
		rc = -errno;
		goto err_event;
	}
	/* Signals stay with the daemon's own threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&o->thread, NULL, out_main, o);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		goto err_thread;
	*out = o;
	*wfd = p[1];
	return 0;

err_thread:
	close(o->stopfd);
err_event:
	close(p[0]);
	close(p[1]);
err_pipe:
	free(o);
	return rc;
}

void wg_golog_child(struct wg_golog *o, pid_t pid, int pidfd)
{
	o->pid = pid;
	o->pidfd = pidfd;
}

void wg_golog_ready(struct wg_golog *o)
{
	atomic_store_explicit(&o->ready, 1, memory_order_release);
}

void wg_golog_stopping(struct wg_golog *o)
{
	if (o)
		atomic_store(&o->stopping, 1);
}

/* Closing an inotify descriptor that had a watch waits for an RCU grace period in the
 * kernel (8-16 ms here), which the loop thread must not. */
void wg_golog_close_later(struct wg_golog *o, int fd)
{
	uint64_t one = 1;

	if (fd < 0)
		return;
	if (!o) {
		close(fd);
		return;
	}
	atomic_store(&o->closefd, fd);
	if (write(o->stopfd, &one, sizeof(one)) < 0)
		log_debug("cannot wake the wireguard-go log reader", "ifname=%s error=\"%s\"",
			  o->ifname, strerror(errno));
}

void wg_golog_stop(struct wg_golog *o)
{
	uint64_t one = 1;

	if (!o)
		return;
	atomic_store(&o->stopping, 1);
	if (write(o->stopfd, &one, sizeof(one)) < 0)
		log_warn("cannot stop the wireguard-go log reader", "ifname=%s error=\"%s\"",
			 o->ifname, strerror(errno));
	pthread_join(o->thread, NULL);
	out_close_fd(o);                  /* handed over after the thread had ended */
	close(o->rfd);
	close(o->stopfd);
	free(o);
}
