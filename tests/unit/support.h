/* support.h - helpers shared by the unit tests of lib/ (test_conn, test_tls, test_http,
 * test_line_stream): running a loop until a condition holds, bounded by a deadline, or
 * for a while, and a TCP listener on loopback whose accept queue is full, so that a
 * connect to it hangs. */
#ifndef TESTS_UNIT_SUPPORT_H
#define TESTS_UNIT_SUPPORT_H

#include <stdint.h>
#include <uv.h>

/* Set by deadline_cb (a timer callback tests may use for their own timers too). */
extern int deadline_hit;
void deadline_cb(uv_timer_t *t);

/* A deadline for SUPPORT_WAIT_FOR: hit is set when it passes. */
struct support_deadline {
	uv_timer_t timer;
	int hit;
};
void support_deadline_start(uv_loop_t *loop, struct support_deadline *d, uint64_t ms);
/* Closes the timer and fails the test if the deadline passed. */
void support_deadline_end(struct support_deadline *d);

/* Runs the loop until cond holds; fails the test after deadline_ms. */
#define SUPPORT_WAIT_FOR(loop, cond, deadline_ms) do {				\
	struct support_deadline sd_;						\
	support_deadline_start((loop), &sd_, (deadline_ms));			\
	while (!(cond) && !sd_.hit)						\
		uv_run((loop), UV_RUN_ONCE);					\
	support_deadline_end(&sd_);						\
} while (0)

/* Runs the loop for ms (for "nothing more happens" checks only). */
void support_run_for(uv_loop_t *loop, uint64_t ms);

/* Runs the loop until *flag is set; fails the test after deadline_ms. */
void support_run_until(uv_loop_t *loop, const int *flag, uint64_t deadline_ms);
/* Runs the loop until nothing is left in it (a cancelled connect has closed all it
 * opened), then closes it. The deadline does not keep the loop alive, it only stops it. */
void support_run_drained(uv_loop_t *loop, uint64_t deadline_ms);
/* Closes what is left and checks that nothing leaked a handle. */
void loop_finish(uv_loop_t *loop);

#define FILLERS 2   /* listen(fd, 1) queues two: Linux counts a queue full past its backlog */

/* A listener on 127.0.0.1 that never accepts: the kernel completes connections into its
 * queue, so a client is connected and then hears nothing. */
int idle_listener(int backlog, uint16_t *port);
/* Connections queued on listener lfd, and in *limit (may be NULL) how many it takes:
 * TCP_INFO of a listener reports its accept queue. -1 on error. */
int accept_queue(int lfd, uint32_t *limit);
/* Fills the accept queue of a backlog-1 listener with connections nobody accepts, so
 * the next connect to it hangs in SYN-SENT. Returns how many fillers it made, 0 when the
 * kernel did not behave so (the caller skips). */
int fill_accept_queue(int lfd, uint16_t port, int fillers[FILLERS]);

#endif
