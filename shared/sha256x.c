/*
 * sha256x.c - the SHA-256 of several chunks at once, two interleaved on
 * one core with the CPU's SHA extensions (docs/FLOORS.md, "Two chunks
 * a core").
 *
 * One SHA-256 block is 64 rounds, each pair of them one sha256rnds2
 * instruction that needs the previous one's result: a single message
 * keeps the SHA unit waiting on its own latency (OpenSSL's code, the
 * fastest single-message one, runs at about 1.7 GB/s on these machines).
 * Two independent messages fed in turn keep it busy: the lanes below
 * hash two chunks side by side, and a lane that finishes its chunk takes
 * the next chunk of the batch, so both stay full until the batch runs
 * out. The ids are SHA-256 exactly (FIPS 180-4); tests/unit/test_hash.c
 * checks every length and pairing against OpenSSL's.
 *
 * Built on x86-64 with GCC or Clang only, with the instructions enabled
 * per function (no global -m flags), and used only when CPUID says the
 * CPU has them (dd_sha256 too, one lane); elsewhere OpenSSL's code hashes
 * every chunk.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "sha256x.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DD_SHA256X_NI 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#ifdef DD_SHA256X_NI

#define NI __attribute__((target("sha,ssse3,sse4.1")))

static const uint32_t sha256_k[64] __attribute__((aligned(16))) = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t sha256_h0[8] = {
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/*
 * One lane: a chunk being hashed. The state is held as the instructions
 * want it, s[0] = (A, B, E, F) and s[1] = (C, D, G, H); `p` walks the
 * chunk's whole blocks, then the padded tail copied into `tail`.
 */
struct lane {
	__m128i s[2];
	const uint8_t *p;
	size_t left;            /* blocks left at p */
	bool in_tail;
	const struct dd_sha256_job *job;
	uint8_t tail[128];
};

/* Big-endian words of 16 message bytes. */
NI static inline __m128i load_be(const uint8_t *p)
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL,
					     0x0405060700010203ULL);

	return _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), bswap);
}

/*
 * The 16 steps of four rounds of one block, written once for one or two
 * lanes. Step g adds round constants to message words W[4g..4g+3] (m[g &
 * 3]) and runs two sha256rnds2; from step 3 on it also completes the
 * words of step g + 1 (sha256msg2, from the sha256msg1 of step g - 2).
 */
#define STEP_RNDS(s0, s1, m, g, k) do {					\
		__m128i w_ = _mm_add_epi32((m)[(g) & 3], (k));		\
		(s1) = _mm_sha256rnds2_epu32((s1), (s0), w_);		\
		if ((g) >= 3 && (g) <= 14)				\
			(m)[((g) + 1) & 3] = _mm_sha256msg2_epu32(	\
				_mm_add_epi32((m)[((g) + 1) & 3],	\
					_mm_alignr_epi8((m)[(g) & 3],	\
						(m)[((g) - 1) & 3], 4)), \
				(m)[(g) & 3]);				\
		w_ = _mm_shuffle_epi32(w_, 0x0e);			\
		(s0) = _mm_sha256rnds2_epu32((s0), (s1), w_);		\
		if ((g) >= 1 && (g) <= 12)				\
			(m)[((g) - 1) & 3] = _mm_sha256msg1_epu32(	\
				(m)[((g) - 1) & 3], (m)[(g) & 3]);	\
	} while (0)

NI static void blocks_x1(__m128i s[2], const uint8_t *p, size_t nb)
{
	__m128i s0 = s[0], s1 = s[1];

	for (; nb > 0; nb--, p += 64) {
		__m128i m[4], save0 = s0, save1 = s1;

#pragma GCC unroll 16
		for (int g = 0; g < 16; g++) {
			__m128i k = _mm_load_si128(
				(const __m128i *)(sha256_k + 4 * g));

			if (g < 4)
				m[g] = load_be(p + 16 * g);
			STEP_RNDS(s0, s1, m, g, k);
		}
		s0 = _mm_add_epi32(s0, save0);
		s1 = _mm_add_epi32(s1, save1);
	}
	s[0] = s0;
	s[1] = s1;
}

/* nb blocks of two lanes, their steps interleaved. */
NI static void blocks_x2(struct lane *a, struct lane *b, size_t nb)
{
	__m128i a0 = a->s[0], a1 = a->s[1], b0 = b->s[0], b1 = b->s[1];
	const uint8_t *p = a->p, *q = b->p;

	for (size_t i = 0; i < nb; i++, p += 64, q += 64) {
		__m128i m[4], n[4];
		__m128i sa0 = a0, sa1 = a1, sb0 = b0, sb1 = b1;

#pragma GCC unroll 16
		for (int g = 0; g < 16; g++) {
			__m128i k = _mm_load_si128(
				(const __m128i *)(sha256_k + 4 * g));

			if (g < 4) {
				m[g] = load_be(p + 16 * g);
				n[g] = load_be(q + 16 * g);
			}
			STEP_RNDS(a0, a1, m, g, k);
			STEP_RNDS(b0, b1, n, g, k);
		}
		a0 = _mm_add_epi32(a0, sa0);
		a1 = _mm_add_epi32(a1, sa1);
		b0 = _mm_add_epi32(b0, sb0);
		b1 = _mm_add_epi32(b1, sb1);
	}
	a->s[0] = a0;
	a->s[1] = a1;
	b->s[0] = b0;
	b->s[1] = b1;
	a->p = p;
	b->p = q;
	a->left -= nb;
	b->left -= nb;
}

/* The initial state, as (A, B, E, F) and (C, D, G, H). */
NI static void lane_start(struct lane *l, const struct dd_sha256_job *job)
{
	__m128i abcd = _mm_loadu_si128((const __m128i *)sha256_h0);
	__m128i efgh = _mm_loadu_si128((const __m128i *)(sha256_h0 + 4));

	abcd = _mm_shuffle_epi32(abcd, 0xb1);            /* C D A B */
	efgh = _mm_shuffle_epi32(efgh, 0x1b);            /* H G F E */
	l->s[0] = _mm_alignr_epi8(abcd, efgh, 8);        /* A B E F */
	l->s[1] = _mm_blend_epi16(efgh, abcd, 0xf0);     /* C D G H */
	l->job = job;
	l->p = job->data;
	l->left = job->len / 64;
	l->in_tail = false;
}

/* The chunk's last len % 64 bytes, 0x80, zeros and its length in bits,
 * big-endian: one block, or two when the length does not fit. */
static void lane_tail(struct lane *l)
{
	size_t len = l->job->len, r = len % 64, nb = r < 56 ? 1 : 2;
	uint64_t bits = (uint64_t)len * 8;

	memset(l->tail, 0, sizeof(l->tail));
	if (r > 0)
		memcpy(l->tail, (const uint8_t *)l->job->data + (len - r), r);
	l->tail[r] = 0x80;
	for (int i = 0; i < 8; i++)
		l->tail[nb * 64 - 1 - i] = (uint8_t)(bits >> (8 * i));
	l->p = l->tail;
	l->left = nb;
	l->in_tail = true;
}

NI static void lane_finish(struct lane *l)
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL,
					     0x0405060700010203ULL);
	__m128i feba = _mm_shuffle_epi32(l->s[0], 0x1b);
	__m128i dchg = _mm_shuffle_epi32(l->s[1], 0xb1);
	__m128i dcba = _mm_blend_epi16(feba, dchg, 0xf0);
	__m128i hgfe = _mm_alignr_epi8(dchg, feba, 8);
	uint8_t *out = l->job->out->b;

	_mm_storeu_si128((__m128i *)out, _mm_shuffle_epi8(dcba, bswap));
	_mm_storeu_si128((__m128i *)(out + 16), _mm_shuffle_epi8(hgfe, bswap));
}

/* A lane whose blocks ran out goes on to its tail, or is done: true. */
static bool lane_done(struct lane *l)
{
	if (l->left > 0)
		return false;
	if (!l->in_tail) {
		lane_tail(l);
		return false;
	}
	lane_finish(l);
	return true;
}

NI void dd_sha256x_ni(const struct dd_sha256_job *jobs, size_t n)
{
	struct lane lanes[2];
	struct lane *a = NULL, *b = NULL;
	size_t next = 0;

	for (;;) {
		if (!a && next < n) {
			a = &lanes[0];
			lane_start(a, &jobs[next++]);
		}
		if (!b && next < n) {
			b = &lanes[1];
			lane_start(b, &jobs[next++]);
		}
		if (a && a->left == 0 && lane_done(a))
			a = NULL;
		else if (b && b->left == 0 && lane_done(b))
			b = NULL;
		else if (a && b)
			blocks_x2(a, b, a->left < b->left ? a->left : b->left);
		else if (a || b) {
			struct lane *l = a ? a : b;

			blocks_x1(l->s, l->p, l->left);
			l->p += 64 * l->left;
			l->left = 0;
		} else
			break;
	}
}

bool dd_sha256x_ni_usable(void)
{
	static int usable = -1;
	unsigned eax, ebx, ecx, edx;
	int u;

	if ((u = __atomic_load_n(&usable, __ATOMIC_RELAXED)) >= 0)
		return u;
	u = __get_cpuid(1, &eax, &ebx, &ecx, &edx) &&
	    (ecx & bit_SSSE3) && (ecx & bit_SSE4_1) &&
	    __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) &&
	    (ebx & bit_SHA);
	__atomic_store_n(&usable, u, __ATOMIC_RELAXED);
	return u;
}

#else

void dd_sha256x_ni(const struct dd_sha256_job *jobs, size_t n)
{
	(void)jobs;
	(void)n;
	abort();        /* never called: dd_sha256x_ni_usable() says so */
}

bool dd_sha256x_ni_usable(void)
{
	return false;
}

#endif

void dd_sha256_batch(const struct dd_sha256_job *jobs, size_t n)
{
	if (n > 0 && dd_sha256x_ni_usable()) {
		dd_sha256x_ni(jobs, n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		dd_sha256(jobs[i].out, jobs[i].data, jobs[i].len);
}
