/* test_hash.c - SHA-256 ids: known vectors, incremental == one-shot, hex. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
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

int main(void)
{
	UNIT_RUN(test_vectors);
	UNIT_RUN(test_incremental);
	UNIT_RUN(test_hex_verify);
	UNIT_RUN(test_sort_unique);
	UNIT_DONE();
}
