/*
 * wire.h - the babl wire protocol: framing and message codecs.
 *
 * Pure functions, no I/O: they are unit-tested and fuzzed in one process.
 *
 * A frame is a 4-byte big-endian body length followed by the body; the body
 * is one type byte followed by the type's fields.  Integers are big-endian,
 * strings and byte strings are a u32 length then the bytes.  A body is at
 * least 1 and at most WIRE_MAX_BODY bytes.  A connection starts with HELLO
 * (client) and WELCOME or ERROR (server), each naming WIRE_VERSION.
 *
 * A call:   C: CALL, DATA*, EOF          S: OUT*, ERRB*, EXIT   (or ERROR)
 * A deploy: C: DEPLOY                    S: TEXT, EXIT         (or ERROR)
 * A query:  C: QUERY                     S: TEXT, EXIT         (or ERROR)
 * A deploy first asks for the service's head: C: QUERY(HEAD)  S: HEAD,
 * then sends DEPLOY on the same connection.
 * Either side may send ERROR and close.  CANCEL from the client kills the
 * call's process group.  A CALL with WIRE_CALL_AGAIN keeps the connection:
 * after its EXIT (not after an ERROR) the client may send another CALL, once
 * it has sent the first call's EOF.
 *
 * Channels: a client that makes many calls at once may carry them all on
 * one connection.  After WELCOME it sends CHAN frames only, and so does the
 * node: a CHAN body is a u32 channel id (below WIRE_CHANS), then bytes of
 * that channel, which is a conversation of its own as above but for HELLO
 * (a channel starts greeted): its frames in order, cut anywhere.  A CHAN
 * with no bytes ends the channel in that direction; the id is free again
 * once each side has ended it.  A node sends only whole frames in a CHAN,
 * and ends a channel where it would close a connection.  One connection's
 * channels share its flow: a channel whose call cannot take more input
 * holds up the channels behind it.  A node may refuse more channels open
 * at once than it can hold (meshd: 256); a broken rule ends the connection.
 */
#ifndef BABL_WIRE_H
#define BABL_WIRE_H

#include <stddef.h>
#include <stdint.h>

struct wbuf;

#define WIRE_MAGIC "BABL"
#define WIRE_VERSION 1
#define WIRE_HDR 4                    /* length prefix */
#define WIRE_CHUNK (512u * 1024)      /* data moved per DATA/OUT frame, at most */
#define WIRE_MAX_BODY (WIRE_CHUNK + 64 * 1024) /* largest body accepted */
#define WIRE_MAX_ARGS 256
#define WIRE_MAX_STR (64u * 1024)     /* names, args, messages */

enum wire_type {
	WIRE_HELLO = 0x01,
	WIRE_WELCOME = 0x02,
	WIRE_ERROR = 0x03,
	WIRE_CALL = 0x10,
	WIRE_DATA = 0x11,
	WIRE_EOF = 0x12,
	WIRE_CANCEL = 0x13,
	WIRE_OUT = 0x20,
	WIRE_ERRB = 0x21,
	WIRE_EXIT = 0x22,
	WIRE_DEPLOY = 0x30,
	WIRE_QUERY = 0x31,
	WIRE_TEXT = 0x32,
	WIRE_HEAD = 0x33,
	WIRE_CHAN = 0x40,
};

#define WIRE_CHANS 1024 /* channel ids of a connection are below this */

/* What a QUERY asks. */
enum wire_query {
	WIRE_Q_LS = 1,
	WIRE_Q_INFO = 2,
	WIRE_Q_LOG = 3,
	WIRE_Q_STATUS = 4,
	WIRE_Q_HEAD = 5, /* current head of a service, for deploy */
	WIRE_Q_VERIFY = 6, /* check the log's checksums and hash chain */
	WIRE_Q_EXPORT = 7, /* the log as a file (arg: first index, decimal) */
	WIRE_Q_NODE = 8,   /* membership: arg "add" (arg2 "ID RAFT_URL CLIENT_URL [guard]") or "remove" (arg2 "ID") */
	WIRE_Q_DIGESTS = 9, /* arg: a signed digest batch (meshd/guard.h), for the leader to log */
	WIRE_Q_REPORT = 10, /* arg: a guard's divergence report, for the leader to log */
};

/* How a call or request ended (EXIT). */
enum wire_exit_kind {
	WIRE_EXITED = 0,   /* code is the exit status */
	WIRE_SIGNALED = 1, /* code is the signal number */
};

/* A view of one frame inside a caller's buffer. */
struct wire_frame {
	uint8_t type;
	const uint8_t *p; /* fields after the type byte */
	size_t len;
};

/* A borrowed string: not NUL-terminated, points into a frame. */
struct wire_str {
	const char *p;
	size_t len;
};

struct wire_hello {
	uint16_t version;
	struct wire_str agent;
};
struct wire_welcome {
	uint16_t version;
	struct wire_str node;
};
struct wire_error {
	int32_t code; /* a BABL_E* code */
	struct wire_str msg;
};
enum { WIRE_CALL_PROGRESS = 1 };
struct wire_call {
	struct wire_str target; /* NAME, NAME@VERSION, service id or version id */
	struct wire_str idkey;  /* empty: not idempotent */
	uint32_t timeout_ms;    /* 0: the service's own limit */
	uint32_t flags;         /* WIRE_CALL_VERIFY bits: babl --verify K */
	uint32_t nargs;
	struct wire_str args[WIRE_MAX_ARGS];
};
/* flags & WIRE_CALL_VERIFY: K, the executing nodes that must have signed
 * the same digest of the run before its output is released (0: none). */
#define WIRE_CALL_VERIFY 0x1fu
/* flags & WIRE_CALL_AGAIN: the client keeps the connection after this
 * call's EXIT and may send another CALL on it (a load generator, a library
 * making many calls); without it the node closes after EXIT or ERROR. */
#define WIRE_CALL_AGAIN 0x20u
struct wire_exit {
	uint8_t kind;
	int32_t code;
	struct wire_str msg; /* why, for limits and failures; may be empty */
};
struct wire_deploy {
	struct wire_str bundle; /* canonical bundle bytes (bundle.h) */
	const uint8_t *owner;   /* 32-byte ed25519 public key */
	uint64_t version;       /* 1 for the first */
	const uint8_t *prev;    /* 32-byte previous version id, zeros for none */
	const uint8_t *sig;     /* 64-byte signature (bundle_deploy_msg) */
};
struct wire_query_msg {
	uint8_t what;
	struct wire_str arg;
	struct wire_str arg2;
};
struct wire_head {
	uint64_t version;     /* 0: no such service */
	const uint8_t *vid;   /* 32 bytes */
	const uint8_t *owner; /* 32 bytes */
};

/*
 * Find the next frame in buf[0..len).  Returns 0 and fills *f and *used
 * (bytes of the frame, prefix included), BABL_EAGAIN if the frame is not
 * all there yet, BABL_ETOOBIG if the announced body exceeds max (or
 * WIRE_MAX_BODY), BABL_EPROTO for an empty body or unknown type.
 */
int wire_next(const uint8_t *buf, size_t len, size_t max, struct wire_frame *f,
    size_t *used);

/* As wire_next, accepting any type byte (for other protocols that use
 * the same framing, such as meshd's worker protocol). */
int wire_next_any(const uint8_t *buf, size_t len, size_t max,
    struct wire_frame *f, size_t *used);

/* Building a frame of another protocol: begin reserves the prefix and
 * writes the type (setting *rc), end patches the length or, if rc is
 * non-zero, cuts the buffer back and returns rc. */
size_t wire_frame_begin(struct wbuf *b, uint8_t type, int *rc);
int wire_frame_end(struct wbuf *b, size_t start, int rc);

/* Decoders: 0 or BABL_EPROTO (wrong type, short, trailing bytes, field
 * beyond its bound).  Outputs borrow from the frame. */
int wire_dec_hello(const struct wire_frame *f, struct wire_hello *m);
int wire_dec_welcome(const struct wire_frame *f, struct wire_welcome *m);
int wire_dec_error(const struct wire_frame *f, struct wire_error *m);
int wire_dec_call(const struct wire_frame *f, struct wire_call *m);
int wire_dec_exit(const struct wire_frame *f, struct wire_exit *m);
int wire_dec_deploy(const struct wire_frame *f, struct wire_deploy *m);
int wire_dec_query(const struct wire_frame *f, struct wire_query_msg *m);
int wire_dec_head(const struct wire_frame *f, struct wire_head *m);
/* DATA, OUT, ERRB, TEXT: the payload is the frame's bytes (f->p, f->len). */
/* CHAN: the channel id (below WIRE_CHANS) and its bytes (none: the end). */
int wire_dec_chan(const struct wire_frame *f, uint32_t *chan, const uint8_t **p,
    size_t *n);

/*
 * A growable output buffer.  Encoders append one whole frame and return 0,
 * or BABL_ENOMEM / BABL_ETOOBIG leaving the buffer as it was.
 */
struct wbuf {
	uint8_t *p;
	size_t len, cap;
};
void wbuf_free(struct wbuf *b);
void wbuf_reset(struct wbuf *b);

int wire_enc_hello(struct wbuf *b, const char *agent);
int wire_enc_welcome(struct wbuf *b, const char *node);
int wire_enc_error(struct wbuf *b, int code, const char *msg);
int wire_enc_call(struct wbuf *b, const struct wire_call *m);
int wire_enc_bytes(struct wbuf *b, uint8_t type, const void *p, size_t n);
int wire_enc_empty(struct wbuf *b, uint8_t type);
int wire_enc_exit(struct wbuf *b, uint8_t kind, int32_t code, const char *msg);
int wire_enc_deploy(struct wbuf *b, const struct wire_deploy *m);
int wire_enc_query(struct wbuf *b, uint8_t what, const char *arg, const char *arg2);
/* A query whose argument is bytes (at most WIRE_MAX_STR), the second empty. */
int wire_enc_query_bytes(struct wbuf *b, uint8_t what, const void *arg, size_t len);
int wire_enc_head(struct wbuf *b, uint64_t version, const uint8_t vid[32],
    const uint8_t owner[32]);

/* A CHAN frame: begin it (0 or BABL_ENOMEM; *start for the end), append
 * whole frames of the channel with the encoders above, then end it, which
 * fails as wire_frame_end does.  wire_enc_chan_end: an empty CHAN. */
int wire_chan_begin(struct wbuf *b, uint32_t chan, size_t *start);
int wire_chan_end(struct wbuf *b, size_t start);
int wire_enc_chan_end(struct wbuf *b, uint32_t chan);

/* The 5-byte header of a frame whose body is one type byte plus n bytes of
 * payload, so that data can be sent from where it lies (two iovecs). */
void wire_hdr(uint8_t hdr[5], uint8_t type, size_t n);

/* Copy a borrowed string into a NUL-terminated malloc'd one (NULL on OOM). */
char *wire_strdup(struct wire_str s);
/* 1 if s equals the C string c. */
int wire_streq(struct wire_str s, const char *c);

/*
 * Field codec shared with the log-entry and bundle codecs: a cursor over
 * bytes that fails sticky on the first overrun.
 */
struct rd {
	const uint8_t *p, *end;
	int bad;
};
static inline void rd_init(struct rd *r, const void *p, size_t n)
{
	r->p = p;
	r->end = (const uint8_t *)p + n;
	r->bad = 0;
}
uint8_t rd_u8(struct rd *r);
uint16_t rd_u16(struct rd *r);
uint32_t rd_u32(struct rd *r);
uint64_t rd_u64(struct rd *r);
const uint8_t *rd_fixed(struct rd *r, size_t n);
struct wire_str rd_str(struct rd *r, size_t max);
/* 0 if every read fitted and nothing is left over, else BABL_EPROTO. */
int rd_done(const struct rd *r);

int wb_u8(struct wbuf *b, uint8_t v);
int wb_u16(struct wbuf *b, uint16_t v);
int wb_u32(struct wbuf *b, uint32_t v);
int wb_u64(struct wbuf *b, uint64_t v);
int wb_raw(struct wbuf *b, const void *p, size_t n);
int wb_str(struct wbuf *b, const void *p, size_t n);
int wb_cstr(struct wbuf *b, const char *s);
void be32_put(uint8_t *p, uint32_t v);
void be64_put(uint8_t *p, uint64_t v);
uint32_t be32_get(const uint8_t *p);
uint64_t be64_get(const uint8_t *p);

#endif
