/* err.c - error strings and exit codes; see err.h. */
#include "err.h"

static const struct {
	int err;
	int exit;
	const char *msg;
} errtab[] = {
	{BABL_OK, 0, "success"},
	{BABL_EUSAGE, EX_USAGE_, "usage error"},
	{BABL_EINPUT, EX_DATAERR_, "input rejected"},
	{BABL_ENOSERVICE, EX_UNAVAILABLE_, "no such service"},
	{BABL_EUNREACH, EX_UNAVAILABLE_, "no node reachable"},
	{BABL_EINTERNAL, EX_SOFTWARE_, "internal error"},
	{BABL_EIO, EX_SOFTWARE_, "I/O error"},
	{BABL_ETIMEDOUT, EX_TEMPFAIL_, "timed out"},
	{BABL_EPROTO, EX_PROTOCOL_, "protocol error"},
	{BABL_EPERM, EX_NOPERM_, "not permitted"},
	{BABL_ENOMEM, EX_SOFTWARE_, "out of memory"},
	{BABL_ETOOBIG, EX_DATAERR_, "too large"},
	{BABL_EAGAIN, EX_TEMPFAIL_, "incomplete"},
	{BABL_ECORRUPT, EX_SOFTWARE_, "data corrupt"},
	{BABL_EEXIST, EX_DATAERR_, "already exists"},
	{BABL_ENOENT, EX_UNAVAILABLE_, "not found"},
	{BABL_ECLOSED, EX_PROTOCOL_, "connection closed"},
	{BABL_ECANCELED, 130, "cancelled"},
	{BABL_ESTALE, EX_NOPERM_, "stale or replayed version"},
	{BABL_EBUSY, EX_TEMPFAIL_, "node busy"},
	{BABL_ELIMIT, EX_DATAERR_, "limit exceeded"},
};

const char *
babl_strerror(int err)
{
	for (unsigned i = 0; i < sizeof errtab / sizeof errtab[0]; i++)
		if (errtab[i].err == err)
			return errtab[i].msg;
	return "unknown error";
}

int
babl_exit_code(int err)
{
	for (unsigned i = 0; i < sizeof errtab / sizeof errtab[0]; i++)
		if (errtab[i].err == err)
			return errtab[i].exit;
	return EX_SOFTWARE_;
}
