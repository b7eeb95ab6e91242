/* bpf_classic.h - a classic BPF interpreter for the instructions vpnd/rawsock.c's filter
 * uses (loads absolute/indirect, ldx imm/msh, jeq/jset/ja, ret), with the kernel's rule
 * that a load past the packet returns 0. Lets the unit test and the fuzzer check that the
 * filter passes everything the parser accepts. Anything else it meets returns -1. */
#ifndef TESTS_BPF_CLASSIC_H
#define TESTS_BPF_CLASSIC_H

#include <stddef.h>
#include <stdint.h>
#include <linux/filter.h>

static inline int bpf_load(const uint8_t *p, size_t len, uint32_t off, unsigned size,
			   uint32_t *out)
{
	unsigned i;

	if (off > len || size > len - off)
		return -1;
	*out = 0;
	for (i = 0; i < size; i++)
		*out = *out << 8 | p[off + i];
	return 0;
}

/* The program's verdict on packet p: its return value (0 = drop), or -1. */
static inline int64_t bpf_run(const struct sock_filter *f, size_t n, const uint8_t *p, size_t len)
{
	static const unsigned sizes[] = { [BPF_W] = 4, [BPF_H] = 2, [BPF_B] = 1 };
	uint32_t a = 0, x = 0, v;
	size_t pc = 0;

	while (pc < n) {
		const struct sock_filter *i = &f[pc++];
		uint16_t c = i->code;

		switch (BPF_CLASS(c)) {
		case BPF_LD:
			if ((BPF_MODE(c) != BPF_ABS && BPF_MODE(c) != BPF_IND) || BPF_SIZE(c) > BPF_B)
				return -1;
			if (bpf_load(p, len, i->k + (BPF_MODE(c) == BPF_IND ? x : 0),
				     sizes[BPF_SIZE(c)], &a))
				return 0;
			break;
		case BPF_LDX:
			if (BPF_MODE(c) == BPF_IMM) {
				x = i->k;
			} else if (BPF_MODE(c) == BPF_MSH && BPF_SIZE(c) == BPF_B) {
				if (bpf_load(p, len, i->k, 1, &v))
					return 0;
				x = 4 * (v & 0xf);
			} else {
				return -1;
			}
			break;
		case BPF_JMP:
			if (BPF_OP(c) == BPF_JA)
				pc += i->k;
			else if (BPF_OP(c) == BPF_JEQ)
				pc += a == i->k ? i->jt : i->jf;
			else if (BPF_OP(c) == BPF_JSET)
				pc += a & i->k ? i->jt : i->jf;
			else
				return -1;
			break;
		case BPF_RET:
			return BPF_RVAL(c) == BPF_K ? (int64_t)i->k : -1;
		default:
			return -1;
		}
	}
	return -1;                               /* ran off the end: the kernel refuses it */
}

#endif
