/* support.c - see support.h. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "support.h"

int deadline_hit;

void deadline_cb(uv_timer_t *t)
{
	deadline_hit = 1;
}

static void support_deadline_cb(uv_timer_t *t)
{
	struct support_deadline *d = t->data;

	d->hit = 1;
}

void support_deadline_start(uv_loop_t *loop, struct support_deadline *d, uint64_t ms)
{
	d->hit = 0;
	uv_timer_init(loop, &d->timer);
	d->timer.data = d;
	uv_timer_start(&d->timer, support_deadline_cb, ms, 0);
}

void support_deadline_end(struct support_deadline *d)
{
	uv_loop_t *loop = d->timer.loop;

	uv_close((uv_handle_t *)&d->timer, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	assert_false(d->hit);
}

void support_run_for(uv_loop_t *loop, uint64_t ms)
{
	struct support_deadline d;

	support_deadline_start(loop, &d, ms);
	while (!d.hit)
		uv_run(loop, UV_RUN_ONCE);
	d.hit = 0;
	support_deadline_end(&d);
}

void support_run_until(uv_loop_t *loop, const int *flag, uint64_t deadline_ms)
{
	uv_timer_t deadline;

	deadline_hit = 0;
	uv_timer_init(loop, &deadline);
	uv_timer_start(&deadline, deadline_cb, deadline_ms, 0);
	while (!*flag && !deadline_hit)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&deadline, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	assert_false(deadline_hit);
}

static void stop_cb(uv_timer_t *t)
{
	deadline_hit = 1;
	uv_stop(t->loop);
}

void support_run_drained(uv_loop_t *loop, uint64_t deadline_ms)
{
	uv_timer_t deadline;

	deadline_hit = 0;
	uv_timer_init(loop, &deadline);
	uv_timer_start(&deadline, stop_cb, deadline_ms, 0);
	uv_unref((uv_handle_t *)&deadline);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&deadline, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	assert_false(deadline_hit);
	assert_int_equal(uv_loop_close(loop), 0);
}

void loop_finish(uv_loop_t *loop)
{
	for (int i = 0; i < 100 && uv_run(loop, UV_RUN_NOWAIT); i++)
		;
	assert_int_equal(uv_loop_close(loop), 0);
}

int idle_listener(int backlog, uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, backlog), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* For a listener TCP_INFO reports its accept queue: tcpi_unacked queued, tcpi_sacked
 * the limit. Linux drops a SYN to a full queue (tcp_conn_request: "listen overflow"). */
int accept_queue(int lfd, uint32_t *limit)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(lfd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -1;
	if (limit)
		*limit = ti.tcpi_sacked;
	return (int)ti.tcpi_unacked;
}

static int accept_queue_full(int lfd)
{
	uint32_t limit;
	int n = accept_queue(lfd, &limit);

	return n >= 0 && (uint32_t)n > limit;
}

int fill_accept_queue(int lfd, uint16_t port, int fillers[FILLERS])
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { .tv_usec = 500000 };   /* bounds a blocking connect */
	uint64_t deadline = uv_hrtime() + 2000000000ull;
	int n;

	for (n = 0; n < FILLERS; n++) {
		fillers[n] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(fillers[n] >= 0);
		assert_int_equal(setsockopt(fillers[n], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
		if (connect(fillers[n], (struct sockaddr *)&a, sizeof(a)) < 0) {
			close(fillers[n]);
			goto err;
		}
		/* connect returns on the SYN-ACK; the listener queues the connection when
		 * the ACK arrives, which may still be on its way through loopback. Waiting
		 * for it also keeps the next SYN off a half-open one's SYN-queue slot. */
		while (accept_queue(lfd, NULL) <= n) {
			if (uv_hrtime() > deadline) {
				close(fillers[n]);
				goto err;
			}
			sched_yield();
		}
	}
	if (accept_queue_full(lfd))
		return n;
err:
	while (n-- > 0)
		close(fillers[n]);
	return 0;
}
