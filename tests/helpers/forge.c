/*
 * forge.c - send forged or broken DEPLOY frames to a node, for tests.
 *
 *   forge URL KEYFILE NAME MODE
 *
 * KEYFILE is the owner's key (babl's key file).  NAME is the service.  It
 * asks the node for NAME's head, then sends one DEPLOY of native /bin/cat
 * (with an extra argument, so that its bundle differs from any legitimate
 * version) built according to MODE:
 *
 *   legit     a correct next version, signed by the owner (a control)
 *   badsig    names the owner, but signed by another (fresh) key
 *   foreign   a fresh key as owner, correctly signed by it (name taken)
 *   replay    version 1 with no previous version, signed by the owner
 *   stale     the current version number again, signed by the owner
 *   wrongprev the next version number with a wrong previous id, signed
 *   badbundle a truncated bundle (its hash signed by the owner)
 *   garbage   random bytes instead of a bundle (hash signed by the owner)
 *
 * Prints one line: "ok: ..." for a successful deploy, or "ERROR CODE
 * (text): message" for an ERROR frame, and exits 0, or the sysexits code of
 * the error (err.c), or 1 when the node answered anything else.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "conn.h"
#include "err.h"
#include "keys.h"
#include "wire.h"

static const char *
code_name(int code)
{
	switch (code) {
	case BABL_EPERM: return "BABL_EPERM";
	case BABL_ESTALE: return "BABL_ESTALE";
	case BABL_EINPUT: return "BABL_EINPUT";
	case BABL_EPROTO: return "BABL_EPROTO";
	case BABL_EBUSY: return "BABL_EBUSY";
	case BABL_EIO: return "BABL_EIO";
	default: return "other";
	}
}

int
main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: forge URL KEYFILE NAME MODE\n");
		return 2;
	}
	const char *url = argv[1], *keyfile = argv[2], *name = argv[3], *mode = argv[4];
	uint8_t pk[32], sk[64], opk[32], osk[64];
	if (sodium_init() < 0)
		return 1;
	if (keys_load(keyfile, pk, sk)) {
		fprintf(stderr, "forge: cannot load key %s\n", keyfile);
		return 1;
	}
	crypto_sign_keypair(opk, osk); /* another key */

	struct conn *c;
	char why[1024];
	if (conn_dial(&c, url, 5000, why, sizeof why)) {
		fprintf(stderr, "forge: %s\n", why);
		return 69;
	}
	char owner_hex[65];
	hex_encode(pk, 32, owner_hex);
	struct wbuf w = {0};
	struct wire_frame f;
	struct wire_head head;
	if (wire_enc_query(&w, WIRE_Q_HEAD, name, owner_hex) || conn_send(c, w.p, w.len) ||
	    conn_recv(c, &f, 10000) || f.type != WIRE_HEAD || wire_dec_head(&f, &head)) {
		fprintf(stderr, "forge: no HEAD from the node\n");
		return 1;
	}
	uint64_t cur = head.version;
	uint8_t curvid[32];
	memcpy(curvid, head.vid, 32);

	/* The bundle: /bin/cat with one argument. */
	struct bundle b = {0};
	char *args[] = {(char *)"-u"};
	b.kind = BUNDLE_NATIVE;
	b.name = (char *)name;
	b.path = (char *)"/usr/bin/cat";
	if (bundle_hash_file(b.path, b.prog_hash)) {
		fprintf(stderr, "forge: cannot hash %s\n", b.path);
		return 1;
	}
	b.nargs = 1;
	b.args = args;
	bundle_default_limits(&b.lim);
	struct wbuf bb = {0};
	if (bundle_encode(&b, &bb))
		return 1;

	const uint8_t *owner = pk, *signer = sk;
	uint64_t version = cur + 1;
	uint8_t prev[32], zero[32] = {0};
	memcpy(prev, curvid, 32);
	const char *which = name;
	const uint8_t *bp = bb.p; /* the bundle bytes sent */
	size_t bl = bb.len;

	if (!strcmp(mode, "legit")) {
	} else if (!strcmp(mode, "badsig")) {
		signer = osk;
	} else if (!strcmp(mode, "foreign")) {
		owner = opk;
		signer = osk;
		version = 1;
		memcpy(prev, zero, 32);
	} else if (!strcmp(mode, "replay")) {
		version = 1;
		memcpy(prev, zero, 32);
	} else if (!strcmp(mode, "stale")) {
		version = cur;
	} else if (!strcmp(mode, "wrongprev")) {
		randombytes_buf(prev, 32);
	} else if (!strcmp(mode, "badbundle")) {
		bl -= 3; /* truncated */
	} else if (!strcmp(mode, "garbage")) {
		static uint8_t junk[200];
		randombytes_buf(junk, sizeof junk);
		bp = junk;
		bl = sizeof junk;
	} else {
		fprintf(stderr, "forge: unknown mode %s\n", mode);
		return 2;
	}

	uint8_t sid[32], bid[32], msg[BUNDLE_MSG_LEN], sig[64];
	bundle_hash(bp, bl, bid);
	bundle_service_id(owner, which, sid);
	bundle_deploy_msg(sid, version, bid, prev, msg);
	bundle_sign(msg, signer, sig);

	struct wire_deploy d = {{(const char *)bp, bl}, owner, version, prev, sig};
	wbuf_reset(&w);
	if (wire_enc_deploy(&w, &d) || conn_send(c, w.p, w.len)) {
		fprintf(stderr, "forge: cannot send the deploy\n");
		return 1;
	}
	int ret = 1;
	for (;;) {
		int rc = conn_recv(c, &f, 10000);
		if (rc) {
			printf("no answer: %s\n", babl_strerror(rc));
			break;
		}
		if (f.type == WIRE_TEXT) {
			printf("ok: %.*s", (int)f.len, (const char *)f.p);
			continue;
		}
		if (f.type == WIRE_EXIT) {
			struct wire_exit x;
			if (wire_dec_exit(&f, &x) == 0)
				ret = x.code;
			break;
		}
		if (f.type == WIRE_ERROR) {
			struct wire_error e;
			if (wire_dec_error(&f, &e)) {
				printf("malformed ERROR frame\n");
				break;
			}
			printf("ERROR %d (%s): %.*s\n", e.code, code_name(e.code), (int)e.msg.len, e.msg.p);
			ret = babl_exit_code(e.code);
			break;
		}
		printf("unexpected frame 0x%02x\n", f.type);
		break;
	}
	wbuf_free(&w);
	wbuf_free(&bb);
	conn_close(c);
	return ret;
}
