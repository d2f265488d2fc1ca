/* test_hash.c - SHA-256 ids: known vectors, incremental == one-shot, hex,
 * batches (the interleaved lanes of sha256x.c) == one at a time. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hash.h"
#include "sha256x.h"
#include "util.h"
#include "unit.h"

static const char empty_hex[] =
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
static const char abc_hex[] =
	"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

static void test_vectors(void)
{
	struct dd_id id;
	char hex[DD_ID_HEX_LEN + 1];

	dd_sha256(&id, "", 0);
	dd_id_to_hex(hex, &id);
	CHECK(strcmp(hex, empty_hex) == 0);
	dd_sha256(&id, "abc", 3);
	dd_id_to_hex(hex, &id);
	CHECK(strcmp(hex, abc_hex) == 0);
	CHECK_EQ(strlen(hex), DD_ID_HEX_LEN);
}

static void test_incremental(void)
{
	struct dd_sha256_ctx *c = dd_sha256_new();
	struct dd_id a, b;
	uint8_t *data = malloc(100000);
	size_t i;

	CHECK(c != NULL);
	for (i = 0; i < 100000; i++)
		data[i] = (uint8_t)(i * 7 + (i >> 8));
	dd_sha256(&a, data, 100000);
	dd_sha256_update(c, data, 1);
	dd_sha256_update(c, data + 1, 65535);
	dd_sha256_update(c, data + 65536, 100000 - 65536);
	dd_sha256_final(c, &b);
	CHECK(dd_id_eq(&a, &b));
	/* final resets: the same context hashes again from scratch */
	dd_sha256_update(c, "abc", 3);
	dd_sha256_final(c, &b);
	dd_sha256(&a, "abc", 3);
	CHECK(dd_id_eq(&a, &b));
	dd_sha256_free(c);
	dd_sha256_free(NULL);
	free(data);
}

static void test_hex_verify(void)
{
	struct dd_id id, back;
	char upper[DD_ID_HEX_LEN + 2];
	size_t i;

	CHECK_EQ(dd_id_from_hex(&id, abc_hex), 0);
	dd_sha256(&back, "abc", 3);
	CHECK(dd_id_eq(&id, &back));
	for (i = 0; i < DD_ID_HEX_LEN; i++)
		upper[i] = (char)(abc_hex[i] >= 'a' ? abc_hex[i] - 32 : abc_hex[i]);
	upper[DD_ID_HEX_LEN] = '\0';
	CHECK_EQ(dd_id_from_hex(&back, upper), 0);
	CHECK(dd_id_eq(&id, &back));
	upper[DD_ID_HEX_LEN] = '0';
	upper[DD_ID_HEX_LEN + 1] = '\0';
	CHECK_EQ(dd_id_from_hex(&back, upper), -EINVAL);     /* 65 digits */
	CHECK_EQ(dd_id_from_hex(&back, abc_hex + 1), -EINVAL); /* 63 */
	CHECK_EQ(dd_id_from_hex(&back, ""), -EINVAL);
	memcpy(upper, abc_hex, DD_ID_HEX_LEN + 1);
	upper[10] = 'g';
	CHECK_EQ(dd_id_from_hex(&back, upper), -EINVAL);

	CHECK_EQ(dd_id_verify(&id, "abc", 3), 0);
	CHECK_EQ(dd_id_verify(&id, "abd", 3), -EBADMSG);
	CHECK(strstr(dd_error_last(), abc_hex) != NULL);
	CHECK_EQ(dd_id_verify(&id, "ab", 2), -EBADMSG);
}

/* Sorted, each id once, the count kept; nothing lost or invented. */
static void test_sort_unique(void)
{
	struct dd_id v[200], orig[200];
	size_t i, j, n;

	CHECK_EQ(dd_ids_sort_unique(NULL, 0), 0);
	for (i = 0; i < 200; i++) {
		memset(&v[i], 0, sizeof(v[i]));
		/* 37 distinct ids, each several times, out of order; they
		 * differ in the last byte only for some, the first for others */
		v[i].b[(i % 37) % 2 ? 0 : DD_ID_LEN - 1] = (uint8_t)(i % 37 + 1);
		v[i].b[5] = (uint8_t)((i * 13) % 37 % 2);
		orig[i] = v[i];
	}
	n = dd_ids_sort_unique(v, 200);
	CHECK(n > 0 && n <= 37);
	for (i = 1; i < n; i++)
		CHECK(memcmp(&v[i - 1], &v[i], DD_ID_LEN) < 0);
	for (i = 0; i < 200; i++) {       /* every id is still there */
		bool found = false;

		for (j = 0; j < n; j++)
			found = found || dd_id_eq(&orig[i], &v[j]);
		CHECK(found);
	}
	for (j = 0; j < n; j++) {         /* and nothing else */
		bool found = false;

		for (i = 0; i < 200; i++)
			found = found || dd_id_eq(&orig[i], &v[j]);
		CHECK(found);
	}
	v[0] = orig[7];
	CHECK_EQ(dd_ids_sort_unique(v, 1), 1);
	CHECK(dd_id_eq(&v[0], &orig[7]));
}

/* Bytes that differ at every offset and between calls. */
static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(seed >> 56);
	}
}

/* FIPS 180-4's examples, through the batch (and the lanes) alone. */
static void test_batch_vectors(void)
{
	static const char two_blocks[] =
		"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	static const char *want[] = {
		empty_hex, abc_hex,
		"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
		"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
	};
	size_t mil = 1000000;
	char *a = malloc(mil);
	struct dd_id ids[4];
	struct dd_sha256_job jobs[4] = {
		{ "", 0, &ids[0] }, { "abc", 3, &ids[1] },
		{ two_blocks, strlen(two_blocks), &ids[2] }, { a, mil, &ids[3] },
	};
	char hex[DD_ID_HEX_LEN + 1];

	CHECK(a != NULL);
	memset(a, 'a', mil);
	for (int ni = 0; ni < 2; ni++) {
		if (ni && !dd_sha256x_ni_usable())
			break;
		memset(ids, 0, sizeof(ids));
		if (ni)
			dd_sha256x_ni(jobs, 4);
		else
			dd_sha256_batch(jobs, 4);
		for (int i = 0; i < 4; i++) {
			dd_id_to_hex(hex, &ids[i]);
			CHECK(strcmp(hex, want[i]) == 0);
		}
	}
	free(a);
}

/* OpenSSL's SHA-256, the reference every other path is checked against
 * (dd_sha256 itself takes the SHA extensions' lane where it can). */
static void ref_sha256(struct dd_id *out, const void *data, size_t len)
{
	unsigned int n = 0;

	CHECK(EVP_Digest(data, len, out->b, &n, EVP_sha256(), NULL) == 1 &&
	      n == DD_ID_LEN);
}

/* Runs `jobs` through the lanes, the batch and dd_sha256 one by one;
 * every id as OpenSSL's. */
static void check_batch(struct dd_sha256_job *jobs, size_t n)
{
	struct dd_id want[16], one;
	bool single = true;

	for (size_t i = 0; i < n; i++) {
		ref_sha256(&want[i], jobs[i].data, jobs[i].len);
		dd_sha256(&one, jobs[i].data, jobs[i].len);
		single = single && dd_id_eq(&one, &want[i]);
	}
	CHECK(single);
	for (int ni = 0; ni < 2; ni++) {
		bool same = true;

		if (ni && !dd_sha256x_ni_usable())
			break;
		for (size_t i = 0; i < n; i++)
			memset(jobs[i].out, 0xa5, sizeof(*jobs[i].out));
		if (ni)
			dd_sha256x_ni(jobs, n);
		else
			dd_sha256_batch(jobs, n);
		for (size_t i = 0; i < n; i++)
			same = same && dd_id_eq(jobs[i].out, &want[i]);
		CHECK(same);
	}
}

/*
 * Every pair of lengths 0..200 (the padding's one- and two-block tails
 * and each lane finishing first), at unaligned addresses; then batches
 * of 1 to 16 chunks of mixed lengths, so that a lane takes the next
 * chunk while the other is in the middle of one, repeats included.
 */
static void test_batch_lengths(void)
{
	size_t big = 3u << 20;
	uint8_t *buf = malloc(big);
	struct dd_id out[16];
	struct dd_sha256_job jobs[16];
	uint64_t r = 12345;

	CHECK(buf != NULL);
	fill(buf, big, 7);
	for (size_t a = 0; a <= 200; a++)
		for (size_t b = 0; b <= 200; b++) {
			jobs[0] = (struct dd_sha256_job){ buf + 1, a, &out[0] };
			jobs[1] = (struct dd_sha256_job){ buf + 1000 + b % 7, b,
							  &out[1] };
			check_batch(jobs, 2);
		}
	for (int round = 0; round < 300; round++) {
		size_t n = 1 + (size_t)round % 16;

		for (size_t i = 0; i < n; i++) {
			size_t len, off;

			r = r * 6364136223846793005ull + 1442695040888963407ull;
			switch ((r >> 40) % 4) {
			case 0: len = (r >> 20) % 130; break;
			case 1: len = 64 * ((r >> 20) % 40) + (r >> 8) % 3; break;
			case 2: len = (r >> 20) % (1u << 20); break;
			default: len = (size_t)(r >> 20) % (big / 2); break;
			}
			off = (size_t)(r >> 3) % (big - len);
			jobs[i] = (struct dd_sha256_job){ buf + off, len, &out[i] };
		}
		if (round % 10 == 0 && n > 2)   /* the same chunk twice */
			jobs[n - 1].data = jobs[0].data, jobs[n - 1].len =
				jobs[0].len;
		check_batch(jobs, n);
	}
	dd_sha256_batch(jobs, 0);       /* nothing to do, nothing touched */
	free(buf);
}

/*
 * Chunks that end where a page the process may not read begins, and
 * chunks that start right after one: the lanes read no byte outside a
 * chunk (a stray read would stop the test with SIGSEGV). NULL with
 * length 0 too.
 */
static void test_batch_page_edges(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t span = 4 * (size_t)pg;
	uint8_t *m = mmap(NULL, span, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *lo, *hi;
	struct dd_id out[3];
	struct dd_sha256_job jobs[3];

	CHECK(m != MAP_FAILED);
	if (m == MAP_FAILED)
		return;
	/* pages: [guard][data][data][guard] */
	fill(m + pg, 2 * (size_t)pg, 3);
	CHECK_EQ(mprotect(m, (size_t)pg, PROT_NONE), 0);
	CHECK_EQ(mprotect(m + 3 * pg, (size_t)pg, PROT_NONE), 0);
	lo = m + pg;            /* the first readable byte */
	hi = m + 3 * pg;        /* one past the last */
	for (size_t len = 0; len <= (size_t)pg; len++) {
		jobs[0] = (struct dd_sha256_job){ hi - len, len, &out[0] };
		jobs[1] = (struct dd_sha256_job){ lo, len / 2, &out[1] };
		jobs[2] = (struct dd_sha256_job){ NULL, 0, &out[2] };
		check_batch(jobs, 3);
	}
	munmap(m, span);
}

int main(void)
{
	UNIT_RUN(test_vectors);
	UNIT_RUN(test_incremental);
	UNIT_RUN(test_hex_verify);
	UNIT_RUN(test_sort_unique);
	UNIT_RUN(test_batch_vectors);
	UNIT_RUN(test_batch_lengths);
	UNIT_RUN(test_batch_page_edges);
	if (!dd_sha256x_ni_usable())
		printf("note: no SHA extensions here: the lanes were not run\n");
	UNIT_DONE();
}
