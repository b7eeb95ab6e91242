/* stun_stub.c - stands in for stun_server.c in a build without it: the STUN server is
 * "not built" (-ENOSYS), so `relay --stun` says so and goes on without it. */
#include <errno.h>
#include <stddef.h>

#include "relay.h"

int stun_server_start(uv_loop_t *loop, const char *hostport, struct stun_server **out)
{
	*out = NULL;
	return -ENOSYS;
}

void stun_server_stop(struct stun_server *s)
{
}

const struct stun_stats *stun_server_stats(const struct stun_server *s)
{
	return NULL;
}

uint16_t stun_server_port(const struct stun_server *s)
{
	return 0;
}
