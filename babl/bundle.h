/*
 * bundle.h - service bundles, ids and deploy signatures.
 *
 * A bundle is what one version of a service is: its kind, name, what to run
 * and its limits.  Its canonical bytes (bundle_encode) are hashed with
 * BLAKE2b-256 into the version id.  The service id is a hash of the owner's
 * public key and the name, so it stays the same across versions.  A deploy
 * is the owner's ed25519 signature over a domain-separated message covering
 * service id, version number, bundle id and the previous version id.
 *
 * Encoding, decoding and hashing are pure; bundle_hash_file reads a file.
 */
#ifndef BABL_BUNDLE_H
#define BABL_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define BUNDLE_ID_LEN 32
#define BUNDLE_MAX_NAME 64
#define BUNDLE_MAX_SOURCE (1024u * 1024)

enum bundle_kind {
	BUNDLE_NATIVE = 1,
	BUNDLE_LUA = 2,
};

struct bundle_limits {
	uint32_t timeout_ms; /* wall clock */
	uint32_t cpu_secs;
	uint64_t mem_bytes;  /* address space */
	uint64_t max_input;  /* bytes of stdin accepted */
	uint64_t fsize;      /* largest file it may write */
	uint32_t nproc;      /* processes and threads */
};

/* Defaults chosen for a filter that may sort a few GiB. */
void bundle_default_limits(struct bundle_limits *l);

struct bundle {
	uint8_t kind;
	char *name;
	/* BUNDLE_NATIVE */
	char *path;            /* absolute */
	uint8_t prog_hash[32]; /* BLAKE2b-256 of the program file */
	uint32_t nargs;
	char **args;           /* fixed arguments, before the caller's */
	/* BUNDLE_LUA */
	char *script;          /* file name the source came from, for messages */
	char *source;          /* NUL-terminated */
	size_t source_len;
	struct bundle_limits lim;
};

/* 1 if name is a valid service name: [A-Za-z0-9_][A-Za-z0-9._-]{0,63}. */
int bundle_name_ok(const char *name);

/* Append the canonical bytes of b to out.  0 or BABL_ENOMEM/ETOOBIG. */
int bundle_encode(const struct bundle *b, struct wbuf *out);

/*
 * Decode canonical bytes into *b (which then owns malloc'd copies; release
 * with bundle_free).  Non-canonical input (anything bundle_encode would not
 * have produced) is BABL_EPROTO; nothing is left allocated on failure.
 */
int bundle_decode(const void *p, size_t n, struct bundle *b);
void bundle_free(struct bundle *b);

void bundle_hash(const void *p, size_t n, uint8_t out[32]);
void bundle_service_id(const uint8_t owner[32], const char *name, uint8_t sid[32]);

#define BUNDLE_MSG_LEN (16 + 32 + 8 + 32 + 32)
void bundle_deploy_msg(const uint8_t sid[32], uint64_t version,
    const uint8_t bid[32], const uint8_t prev[32], uint8_t msg[BUNDLE_MSG_LEN]);
void bundle_sign(const uint8_t msg[BUNDLE_MSG_LEN], const uint8_t sk[64],
    uint8_t sig[64]);
/* 0 if sig is owner's signature of msg, else BABL_EPERM. */
int bundle_verify(const uint8_t msg[BUNDLE_MSG_LEN], const uint8_t owner[32],
    const uint8_t sig[64]);

/* BLAKE2b-256 of a file's contents, through fd (or path when fd < 0). */
int bundle_hash_fd(int fd, uint8_t out[32]);
int bundle_hash_file(const char *path, uint8_t out[32]);

/* Lower-case hex; out needs 2n+1 bytes.  hex_decode: 0 or BABL_EINPUT. */
void hex_encode(const uint8_t *p, size_t n, char *out);
int hex_decode(const char *s, uint8_t *out, size_t n);

#endif
