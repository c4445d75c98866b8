/*
 * fuzz_bundle.c - libFuzzer harness for bundle_decode.
 *
 * Whatever decodes must be canonical: encoding it again gives back exactly
 * the input.  Whatever does not decode must leave the bundle empty, and
 * ASan's leak check sees that nothing was left allocated.
 *
 * Built with -DFUZZ_SEEDS and without libFuzzer, this file is instead a
 * program that writes a few valid bundles into the directory it is given.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "err.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(e)                                                           \
	do {                                                               \
		if (!(e)) {                                                \
			fprintf(stderr, "fuzz_bundle: %s:%d: %s\n", __FILE__, \
				__LINE__, #e);                             \
			abort();                                           \
		}                                                          \
	} while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bundle b;
	int rc = bundle_decode(data, size, &b);
	if (rc != 0) {
		CHECK(rc == BABL_EPROTO);
		CHECK(!b.name && !b.path && !b.args && !b.script && !b.source);
		return 0;
	}
	CHECK(b.kind == BUNDLE_NATIVE || b.kind == BUNDLE_LUA);
	CHECK(b.name && bundle_name_ok(b.name));
	if (b.kind == BUNDLE_NATIVE) {
		CHECK(b.path && b.path[0] == '/');
		for (uint32_t i = 0; i < b.nargs; i++)
			CHECK(b.args[i]);
	} else {
		CHECK(b.script && b.source && b.source[b.source_len] == 0);
	}

	struct wbuf w = {0};
	CHECK(bundle_encode(&b, &w) == 0);
	CHECK(w.len == size);
	CHECK(memcmp(w.p, data, size) == 0);
	bundle_free(&b);
	wbuf_free(&w);
	return 0;
}

#ifdef FUZZ_SEEDS
static void
put_seed(const char *dir, int n, const struct bundle *b)
{
	struct wbuf w = {0};
	char path[4096];
	CHECK(bundle_encode(b, &w) == 0);
	snprintf(path, sizeof path, "%s/seed-%02d", dir, n);
	FILE *fp = fopen(path, "wb");
	CHECK(fp);
	CHECK(fwrite(w.p, 1, w.len, fp) == w.len);
	CHECK(fclose(fp) == 0);
	LLVMFuzzerTestOneInput(w.p, w.len);
	wbuf_free(&w);
}

int
main(int argc, char **argv)
{
	static char *args[] = {"-n", "-k", "2"};
	static char src[] = "return function(s) return s:upper() end\n";
	struct bundle b;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	memset(&b, 0, sizeof b);
	b.kind = BUNDLE_NATIVE;
	b.name = "sort";
	b.path = "/usr/bin/sort";
	memset(b.prog_hash, 0xab, sizeof b.prog_hash);
	b.nargs = 3;
	b.args = args;
	bundle_default_limits(&b.lim);
	put_seed(argv[1], 0, &b);
	b.nargs = 0;
	b.args = NULL;
	b.name = "cat";
	b.path = "/bin/cat";
	put_seed(argv[1], 1, &b);

	memset(&b, 0, sizeof b);
	b.kind = BUNDLE_LUA;
	b.name = "upper";
	b.script = "upper.lua";
	b.source = src;
	b.source_len = sizeof src - 1;
	bundle_default_limits(&b.lim);
	put_seed(argv[1], 2, &b);
	return 0;
}
#endif
