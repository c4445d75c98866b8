/* sender.c - deliver queries to a node from a thread of their own; see sender.h. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "err.h"
#include "logmsg.h"
#include "sender.h"
#include "wire.h"

struct item {
	struct item *next;
	uint8_t what;
	size_t len;
	uint8_t p[];
};

struct sender {
	char url[512];
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stopping;
	struct item *q, **qt;
	unsigned n;
	uint64_t sent, dropped;
};

/* Deliver one item: 0 (done, or refused for good) or -1 (try again). */
static int
deliver(struct sender *s, const struct item *it)
{
	struct conn *c;
	struct wbuf b = {0};
	struct wire_frame f;
	char why[512];
	int rc;
	if (conn_dial(&c, s->url, 2000, why, sizeof why))
		return -1;
	rc = wire_enc_query_bytes(&b, it->what, it->p, it->len) || conn_send(c, b.p, b.len) ? -1 : 0;
	wbuf_free(&b);
	while (rc == 0) {
		if (conn_recv(c, &f, 10000)) {
			rc = -1;
			break;
		}
		if (f.type == WIRE_EXIT)
			break;
		if (f.type == WIRE_ERROR) {
			struct wire_error er;
			if (wire_dec_error(&f, &er) || er.code == BABL_EUNREACH || er.code == BABL_EBUSY)
				rc = -1;
			else
				log_warnx("a node refused a query of ours: %.*s", (int)er.msg.len, er.msg.p);
			break;
		}
	}
	conn_close(c);
	return rc;
}

static void *
sender_main(void *arg)
{
	struct sender *s = arg;
	pthread_mutex_lock(&s->mu);
	while (!s->stopping) {
		if (!s->q) {
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		struct item *it = s->q;
		pthread_mutex_unlock(&s->mu);
		int rc = deliver(s, it);
		pthread_mutex_lock(&s->mu);
		if (rc == 0 && s->q == it) {
			s->q = it->next;
			if (!s->q)
				s->qt = &s->q;
			s->n--;
			s->sent++;
			free(it);
		} else if (rc) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += SENDER_RETRY_MS * 1000000L;
			if (until.tv_nsec >= 1000000000) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000;
			}
			if (!s->stopping)
				pthread_cond_timedwait(&s->cv, &s->mu, &until);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int
sender_start(struct sender **out, const char *url)
{
	struct sender *s = calloc(1, sizeof *s);
	if (!s)
		return BABL_ENOMEM;
	snprintf(s->url, sizeof s->url, "%s", url);
	s->qt = &s->q;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (pthread_create(&s->thr, NULL, sender_main, s)) {
		free(s);
		return BABL_EINTERNAL;
	}
	*out = s;
	return 0;
}

void
sender_stop(struct sender *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = 1;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thr, NULL);
	while (s->q) {
		struct item *it = s->q;
		s->q = it->next;
		free(it);
	}
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}

int
sender_put(struct sender *s, uint8_t what, const void *arg, size_t len)
{
	struct item *it = malloc(sizeof *it + len);
	if (!it)
		return BABL_ENOMEM;
	it->next = NULL;
	it->what = what;
	it->len = len;
	memcpy(it->p, arg, len);
	pthread_mutex_lock(&s->mu);
	if (s->n >= SENDER_MAX && s->q && s->q->next) {
		/* The head may be in delivery: drop the one behind it. */
		struct item *old = s->q->next;
		s->q->next = old->next;
		if (s->qt == &old->next)
			s->qt = &s->q->next;
		free(old);
		s->n--;
		s->dropped++;
	}
	*s->qt = it;
	s->qt = &it->next;
	s->n++;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

void
sender_stats(struct sender *s, unsigned *waiting, uint64_t *sent, uint64_t *dropped)
{
	pthread_mutex_lock(&s->mu);
	*waiting = s->n;
	*sent = s->sent;
	*dropped = s->dropped;
	pthread_mutex_unlock(&s->mu);
}
