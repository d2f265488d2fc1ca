/*
 * test_syncwire.c - what dedup-server sync accepts from a source
 * (server/repo/syncwire.h): fetch replies checked chunk by chunk against
 * the ids asked for, snapshot list items, --newer-than dates.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "unit.h"
#include "../../server/repo/syncwire.c"

static const char text_a[] = "the first chunk's plain bytes, repeated "
			     "the first chunk's plain bytes, repeated";
static const char text_b[] = "another chunk";

static void ids_of(struct dd_id *a, struct dd_id *b)
{
	dd_sha256(a, text_a, sizeof(text_a));
	dd_sha256(b, text_b, sizeof(text_b));
}

/* A bundle of a (zstd) then b (stored plain) under the given ids. */
static void bundle_of(struct dd_buf *out, const struct dd_id *ida,
		      const struct dd_id *idb, bool with_b)
{
	struct dd_buf z;

	dd_buf_init(&z, 0);
	dd_compress(&z, text_a, sizeof(text_a), 3, NULL);
	dd_bundle_begin(out);
	dd_bundle_add(out, ida, DD_COMP_ZSTD, sizeof(text_a), z.data,
		      (uint32_t)z.len);
	if (with_b)
		dd_bundle_add(out, idb, DD_COMP_NONE, sizeof(text_b), text_b,
			      sizeof(text_b));
	dd_bundle_finish(out);
	dd_buf_release(&z);
}

static int check(const struct dd_buf *body, const struct dd_id *want,
		 size_t n, size_t *bad)
{
	struct dd_bundle_record recs[4];
	struct dd_buf plain;
	int rc;

	dd_buf_init(&plain, 0);
	dd_error_clear();
	rc = syncwire_check_bundle(body->data, body->len, want, n, true, recs,
				   bad, &plain, NULL);
	dd_buf_release(&plain);
	return rc;
}

static void test_bundle_good(void)
{
	struct dd_id want[2];
	struct dd_buf b;
	size_t bad = 99;

	ids_of(&want[0], &want[1]);
	dd_buf_init(&b, 0);
	bundle_of(&b, &want[0], &want[1], true);
	CHECK_EQ(check(&b, want, 2, &bad), 0);
	CHECK_EQ(bad, 2);
	dd_buf_release(&b);
}

static void test_bundle_id_mismatch(void)
{
	struct dd_id want[2];
	struct dd_buf b;
	char hex[DD_ID_HEX_LEN + 1];
	size_t bad = 99;

	ids_of(&want[0], &want[1]);
	/* The second record carries b's bytes under an id they do not hash
	 * to: a damaged chunk sent as the one asked for. */
	want[1].b[0] ^= 1;
	dd_buf_init(&b, 0);
	bundle_of(&b, &want[0], &want[1], true);
	CHECK_EQ(check(&b, want, 2, &bad), -EBADMSG);
	CHECK_EQ(bad, 1);
	dd_id_to_hex(hex, &want[1]);
	CHECK(strstr(dd_error_last(), hex) != NULL);
	CHECK(strstr(dd_error_last(), "damaged") != NULL);
	dd_buf_release(&b);
}

static void test_bundle_other_chunk(void)
{
	struct dd_id want[2], swapped[2];
	struct dd_buf b;
	size_t bad = 99;

	ids_of(&want[0], &want[1]);
	swapped[0] = want[1];
	swapped[1] = want[0];
	dd_buf_init(&b, 0);
	bundle_of(&b, &want[0], &want[1], true);
	CHECK_EQ(check(&b, swapped, 2, &bad), -EBADMSG);
	CHECK_EQ(bad, 0);
	CHECK(strstr(dd_error_last(), "in its place") != NULL);
	dd_buf_release(&b);
}

static void test_bundle_count_and_garbage(void)
{
	struct dd_id want[3];
	struct dd_buf b;
	size_t bad = 99;

	ids_of(&want[0], &want[1]);
	want[2] = want[1];
	dd_buf_init(&b, 0);
	bundle_of(&b, &want[0], &want[1], true);
	CHECK_EQ(check(&b, want, 3, &bad), -EBADMSG);   /* 2 for 3 */
	CHECK_EQ(bad, 3);
	CHECK(strstr(dd_error_last(), "2 chunks for 3") != NULL);
	b.len -= 5;                                      /* cut short */
	CHECK_EQ(check(&b, want, 2, &bad), -EBADMSG);
	CHECK_EQ(bad, 2);
	b.len = 7;                                       /* no header */
	CHECK_EQ(check(&b, want, 2, &bad), -EBADMSG);
	dd_buf_release(&b);

	/* zstd bytes that do not decompress */
	dd_buf_init(&b, 0);
	dd_bundle_begin(&b);
	dd_bundle_add(&b, &want[0], DD_COMP_ZSTD, sizeof(text_a),
		      "not zstd at all", 15);
	dd_bundle_finish(&b);
	CHECK_EQ(check(&b, want, 1, &bad), -EBADMSG);
	CHECK_EQ(bad, 0);
	CHECK(strstr(dd_error_last(), "does not decompress") != NULL);
	dd_buf_release(&b);
}

static bool name_ok(const char *s)
{
	return s[0] && s[0] != '.' && strlen(s) <= 64 && !strchr(s, '/');
}

static void test_item(void)
{
	const char *id = "0123456789abcdef0123456789abcdef"
			 "0123456789abcdef0123456789abcdef";
	struct syncwire_item it;
	json_t *j;

	j = json_pack("{s:s, s:s, s:s, s:I}", "id", id, "client", "alice",
		      "cursor", "17-abc", "unix_written", (json_int_t)17);
	CHECK_EQ(syncwire_item_parse(j, name_ok, &it), 0);
	CHECK(strcmp(it.id, id) == 0 && strcmp(it.client, "alice") == 0);
	CHECK(strcmp(it.cursor, "17-abc") == 0);
	CHECK_EQ(it.unix_written, 17);
	CHECK(!it.damaged);
	json_object_set_new(j, "damaged", json_true());
	CHECK_EQ(syncwire_item_parse(j, name_ok, &it), 0);
	CHECK(it.damaged);
	json_object_set_new(j, "client", json_string("../x"));
	CHECK_EQ(syncwire_item_parse(j, name_ok, &it), -EBADMSG);
	json_object_set_new(j, "client", json_string("alice"));
	json_object_set_new(j, "id", json_string("0123"));
	CHECK_EQ(syncwire_item_parse(j, name_ok, &it), -EBADMSG);
	json_object_set_new(j, "id", json_string(id));
	json_object_del(j, "cursor");
	CHECK_EQ(syncwire_item_parse(j, name_ok, &it), -EBADMSG);
	json_object_set_new(j, "cursor", json_string("1-a&client=bob"));
	CHECK_EQ(syncwire_item_parse(j, name_ok, &it), -EBADMSG);
	json_object_set_new(j, "cursor", json_string("1-a"));
	json_object_set_new(j, "unix_written", json_string("17"));
	CHECK_EQ(syncwire_item_parse(j, name_ok, &it), -EBADMSG);
	json_decref(j);
}

static void test_since(void)
{
	int64_t t = 0, now = 1796464800;

	CHECK_EQ(syncwire_parse_since("2026-12-05", now, &t), 0);
	CHECK_EQ(t, 1796428800);
	CHECK_EQ(syncwire_parse_since("2026-12-05T10:00:00Z", now, &t), 0);
	CHECK_EQ(t, 1796464800);
	CHECK_EQ(syncwire_parse_since("7d", now, &t), 0);
	CHECK_EQ(t, now - 7 * 86400);
	CHECK_EQ(syncwire_parse_since("12h", now, &t), 0);
	CHECK_EQ(t, now - 12 * 3600);
	CHECK_EQ(syncwire_parse_since("90m", now, &t), 0);
	CHECK_EQ(t, now - 5400);
	CHECK_EQ(syncwire_parse_since("2026-13-01", now, &t), -EINVAL);
	CHECK_EQ(syncwire_parse_since("yesterday", now, &t), -EINVAL);
	CHECK_EQ(syncwire_parse_since("7x", now, &t), -EINVAL);
	CHECK_EQ(syncwire_parse_since("", now, &t), -EINVAL);
	CHECK_EQ(syncwire_parse_since("d", now, &t), -EINVAL);
	CHECK_EQ(syncwire_parse_since("2026-12-05T10:00", now, &t), -EINVAL);
	CHECK_EQ(syncwire_parse_since("2026-12-05 junk", now, &t), -EINVAL);
	CHECK_EQ(syncwire_parse_since("99999999999d", now, &t), -EINVAL);
}

/* A sealed record passes on its layout only where sealed chunks may be
 * (an encrypted snapshot's file chunks), and is refused elsewhere. */
static void test_bundle_sealed(void)
{
	struct dd_bundle_record recs[1];
	uint8_t sealed[10 + DD_COMP_SEALED_OVERHEAD];
	struct dd_id want;
	struct dd_buf b, plain;
	size_t bad = 99;

	memset(sealed, 0x5a, sizeof(sealed));
	memset(&want, 0x11, sizeof(want));
	dd_buf_init(&b, 0);
	dd_buf_init(&plain, 0);
	dd_bundle_begin(&b);
	dd_bundle_add(&b, &want, DD_COMP_SEALED, 10, sealed, sizeof(sealed));
	dd_bundle_finish(&b);
	CHECK_EQ(syncwire_check_bundle(b.data, b.len, &want, 1, true, recs,
				       &bad, &plain, NULL), 0);
	CHECK_EQ(syncwire_check_bundle(b.data, b.len, &want, 1, false, recs,
				       &bad, &plain, NULL), -EBADMSG);
	CHECK_EQ(bad, 0);
	CHECK(strstr(dd_error_last(), "sealed") != NULL);
	dd_buf_release(&b);
	dd_buf_release(&plain);
}

int main(void)
{
	UNIT_RUN(test_bundle_sealed);
	UNIT_RUN(test_bundle_good);
	UNIT_RUN(test_bundle_id_mismatch);
	UNIT_RUN(test_bundle_other_chunk);
	UNIT_RUN(test_bundle_count_and_garbage);
	UNIT_RUN(test_item);
	UNIT_RUN(test_since);
	UNIT_DONE();
}
