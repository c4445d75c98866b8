/*
 * err.h - the one error vocabulary of babl and meshd.
 *
 * Every fallible function in libbabl and meshd returns an int: 0 on success
 * or a negative BABL_E* code.  babl_strerror() turns a code into a short
 * English phrase.  babl_exit_code() maps a code onto the sysexits status that
 * the babl command exits with (see DESIGN.md, "Command line").
 */
#ifndef BABL_ERR_H
#define BABL_ERR_H

enum babl_err {
	BABL_OK = 0,
	BABL_EUSAGE = -1,     /* bad arguments from the user (64) */
	BABL_EINPUT = -2,     /* input rejected: too large, malformed (65) */
	BABL_ENOSERVICE = -3, /* no such service (69) */
	BABL_EUNREACH = -4,   /* no node could be reached (69) */
	BABL_EINTERNAL = -5,  /* internal error (70) */
	BABL_EIO = -6,        /* I/O error on a file or the store (74 -> 70) */
	BABL_ETIMEDOUT = -7,  /* a deadline passed (75) */
	BABL_EPROTO = -8,     /* malformed or unexpected frame (76) */
	BABL_EPERM = -9,      /* not permitted: signature, ownership (77) */
	BABL_ENOMEM = -10,    /* out of memory (70) */
	BABL_ETOOBIG = -11,   /* a length beyond its bound (65) */
	BABL_EAGAIN = -12,    /* not enough bytes yet (never shown to users) */
	BABL_ECORRUPT = -13,  /* stored data fails its checksum or chain (70) */
	BABL_EEXIST = -14,    /* already exists (65) */
	BABL_ENOENT = -15,    /* not found (66 -> 69 for services) */
	BABL_ECLOSED = -16,   /* peer closed the connection (76) */
	BABL_ECANCELED = -17, /* the call was cancelled (130) */
	BABL_ESTALE = -18,    /* replayed or out-of-date version (77) */
	BABL_EBUSY = -19,     /* node at its limit, try again (75) */
	BABL_ELIMIT = -20,    /* a service limit was hit (65) */
};

const char *babl_strerror(int err);

/* The sysexits code for err: 64 usage, 65 data, 69 unavailable, 70
 * software, 75 temporary failure, 76 protocol, 77 permission. */
int babl_exit_code(int err);

/* sysexits values used across the project. */
enum {
	EX_OK_ = 0,
	EX_USAGE_ = 64,
	EX_DATAERR_ = 65,
	EX_UNAVAILABLE_ = 69,
	EX_SOFTWARE_ = 70,
	EX_TEMPFAIL_ = 75,
	EX_PROTOCOL_ = 76,
	EX_NOPERM_ = 77,
};

#endif
