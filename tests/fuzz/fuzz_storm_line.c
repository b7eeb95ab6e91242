/* fuzz_storm_line.c - nodesim's storm_line_version (tests/tools/storm_stats.c) on
 * arbitrary bytes: the first half as a line's head, the rest as its tail. What it takes
 * is a non-negative version and an empty or 16-hex epoch. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tools/storm_stats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *head, *tail;
	char epoch[17] = "";
	long long v = -1;
	size_t half = size / 2;
	int got;

	head = malloc(half + 1);
	tail = malloc(size - half + 1);
	if (!head || !tail)
		abort();
	memcpy(head, data, half);
	head[half] = 0;
	memcpy(tail, data + half, size - half);
	tail[size - half] = 0;
	got = storm_line_version(head, size - half ? tail : NULL, &v, epoch);
	if ((got & STORM_LINE_V) && v < 0)
		abort();
	if (!(got & STORM_LINE_V) && v != -1)
		abort();
	if (epoch[0] && (strlen(epoch) != 16 || strspn(epoch, "0123456789abcdef") != 16))
		abort();
	free(head);
	free(tail);
	return 0;
}
