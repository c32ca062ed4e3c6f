#include "loop/loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/util.h"

struct loop {
	int epfd;
	struct sched *sched;
	usec_t now;
	bool stop;

	struct epoll_event *dispatching; /* batch being dispatched, for loop_io_del */
	int ndispatching;

	struct loop_io timer_io;
	usec_t timer_armed; /* due time the timerfd is armed for, or USEC_INFINITY */

	struct loop_io signal_io;
	loop_signal_fn signal_cb;
	void *signal_ud;

	/* worker pool */
	struct loop_io done_io;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t threads[LOOP_WORKERS];
	unsigned nthreads;
	bool quit;
	struct loop_work *todo_head, *todo_tail;
	struct loop_work *done_head, *done_tail;
};

static void on_timer(struct loop_io *io, uint32_t events)
{
	struct loop *l = container_of(io, struct loop, timer_io);
	uint64_t expirations;
	UNUSED(events);
	/* Draining may fail with EAGAIN when re-armed meanwhile; that is fine. */
	if (read(io->fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		return;
	l->timer_armed = USEC_INFINITY;
}

static void on_signal(struct loop_io *io, uint32_t events)
{
	struct loop *l = container_of(io, struct loop, signal_io);
	struct signalfd_siginfo si;
	UNUSED(events);
	while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		if (l->signal_cb)
			l->signal_cb(l, (int)si.ssi_signo, l->signal_ud);
}

static void queue_push(struct loop_work **head, struct loop_work **tail, struct loop_work *w)
{
	w->next = NULL;
	if (*tail)
		(*tail)->next = w;
	else
		*head = w;
	*tail = w;
}

static struct loop_work *queue_pop(struct loop_work **head, struct loop_work **tail)
{
	struct loop_work *w = *head;
	if (w) {
		*head = w->next;
		if (!*head)
			*tail = NULL;
	}
	return w;
}

static void on_done(struct loop_io *io, uint32_t events)
{
	struct loop *l = container_of(io, struct loop, done_io);
	uint64_t n;
	UNUSED(events);
	if (read(io->fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	for (;;) {
		pthread_mutex_lock(&l->mu);
		struct loop_work *w = queue_pop(&l->done_head, &l->done_tail);
		pthread_mutex_unlock(&l->mu);
		if (!w)
			break;
		w->busy = false;
		if (w->done)
			w->done(w);
	}
}

int loop_new(struct loop **ret)
{
	struct loop *l = calloc(1, sizeof(*l));
	int r;

	if (!l)
		return -ENOMEM;
	l->epfd = l->timer_io.fd = l->signal_io.fd = l->done_io.fd = -1;
	l->timer_armed = USEC_INFINITY;
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	r = sched_new(&l->sched);
	if (r < 0)
		goto err_free;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		r = -errno;
		goto err_free;
	}
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (tfd < 0) {
		r = -errno;
		goto err_free;
	}
	r = loop_io_add(l, &l->timer_io, tfd, EPOLLIN, on_timer);
	if (r < 0) {
		close(tfd);
		goto err_free;
	}
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (efd < 0) {
		r = -errno;
		goto err_free;
	}
	r = loop_io_add(l, &l->done_io, efd, EPOLLIN, on_done);
	if (r < 0) {
		close(efd);
		goto err_free;
	}
	l->now = now_usec();
	*ret = l;
	return 0;

err_free:
	loop_free(l);
	return r;
}

static void close_io(struct loop *l, struct loop_io *io)
{
	if (io->fd >= 0) {
		loop_io_del(l, io);
		close(io->fd);
		io->fd = -1;
	}
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->mu);
	l->quit = true;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	for (unsigned i = 0; i < l->nthreads; i++)
		pthread_join(l->threads[i], NULL);
	close_io(l, &l->timer_io);
	close_io(l, &l->signal_io);
	close_io(l, &l->done_io);
	if (l->epfd >= 0)
		close(l->epfd);
	sched_free(l->sched);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	free(l);
}

struct sched *loop_sched(struct loop *l)
{
	return l->sched;
}
usec_t loop_now(const struct loop *l)
{
	return l->now;
}
usec_t loop_now_update(struct loop *l)
{
	return l->now = now_usec();
}
void loop_stop(struct loop *l)
{
	l->stop = true;
}
bool loop_stopping(const struct loop *l)
{
	return l->stop;
}

int loop_io_add(struct loop *l, struct loop_io *io, int fd, uint32_t events, loop_io_fn cb)
{
	struct epoll_event ev = { .events = events, .data.ptr = io };
	io->fd = fd;
	io->events = events;
	io->cb = cb;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	io->added = true;
	return 0;
}

int loop_io_mod(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = io };
	if (!io->added)
		return -EINVAL;
	if (io->events == events)
		return 0;
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
		return -errno;
	io->events = events;
	return 0;
}

void loop_io_del(struct loop *l, struct loop_io *io)
{
	if (!io->added)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->added = false;
	/* The owner may free io right after this: drop it from the batch in flight. */
	for (int i = 0; i < l->ndispatching; i++)
		if (l->dispatching[i].data.ptr == io)
			l->dispatching[i].data.ptr = NULL;
}

int loop_task_add(struct loop *l, struct task *t, usec_t due)
{
	return sched_add(l->sched, t, due);
}

void loop_task_cancel(struct loop *l, struct task *t)
{
	sched_cancel(l->sched, t);
}

int loop_on_signal(struct loop *l, loop_signal_fn cb, void *ud)
{
	sigset_t mask;
	int fd, r;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0)
		return -EINVAL;
	signal(SIGPIPE, SIG_IGN);
	fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = loop_io_add(l, &l->signal_io, fd, EPOLLIN, on_signal);
	if (r < 0) {
		close(fd);
		return r;
	}
	l->signal_cb = cb;
	l->signal_ud = ud;
	return 0;
}

static void *worker_main(void *arg)
{
	struct loop *l = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&l->mu);
	for (;;) {
		while (!l->quit && !l->todo_head)
			pthread_cond_wait(&l->cv, &l->mu);
		if (l->quit)
			break;
		struct loop_work *w = queue_pop(&l->todo_head, &l->todo_tail);
		pthread_mutex_unlock(&l->mu);
		w->work(w);
		pthread_mutex_lock(&l->mu);
		queue_push(&l->done_head, &l->done_tail, w);
		if (write(l->done_io.fd, &one, sizeof(one)) < 0) {
			/* eventfd counter overflow cannot happen at our rates */
		}
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

int loop_work_submit(struct loop *l, struct loop_work *w)
{
	int r = 0;
	if (w->busy)
		return -EBUSY;
	pthread_mutex_lock(&l->mu);
	if (l->nthreads < LOOP_WORKERS && (l->todo_head || l->nthreads == 0)) {
		if (pthread_create(&l->threads[l->nthreads], NULL, worker_main, l) == 0)
			l->nthreads++;
		else if (l->nthreads == 0)
			r = -EAGAIN;
	}
	if (r == 0) {
		w->busy = true;
		queue_push(&l->todo_head, &l->todo_tail, w);
		pthread_cond_signal(&l->cv);
	}
	pthread_mutex_unlock(&l->mu);
	return r;
}

static void arm_timer(struct loop *l)
{
	usec_t due = sched_next_due(l->sched);
	struct itimerspec its = { 0 };

	if (due == l->timer_armed)
		return;
	if (due != USEC_INFINITY) {
		if (due <= 0)
			due = 1; /* 0 would disarm */
		its.it_value.tv_sec = due / USEC_PER_SEC;
		its.it_value.tv_nsec = (long)(due % USEC_PER_SEC) * 1000;
	}
	timerfd_settime(l->timer_io.fd, TFD_TIMER_ABSTIME, &its, NULL);
	l->timer_armed = due;
}

int loop_run_once(struct loop *l, usec_t timeout_us)
{
	struct epoll_event evs[64];
	int n, handled = 0, ms;

	l->now = now_usec();
	handled += sched_run_due(l->sched, l->now);
	arm_timer(l);
	ms = timeout_us < 0 ? -1 : (int)((timeout_us + 999) / 1000);
	if (sched_next_due(l->sched) <= now_usec())
		ms = 0;
	n = epoll_wait(l->epfd, evs, (int)ARRAY_SIZE(evs), ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	l->now = now_usec();
	l->dispatching = evs;
	l->ndispatching = n;
	for (int i = 0; i < n; i++) {
		struct loop_io *io = evs[i].data.ptr;
		if (!io)
			continue;
		io->cb(io, evs[i].events);
		handled++;
	}
	l->dispatching = NULL;
	l->ndispatching = 0;
	l->now = now_usec();
	handled += sched_run_due(l->sched, l->now);
	arm_timer(l);
	return handled;
}

int loop_run(struct loop *l)
{
	l->stop = false;
	while (!l->stop) {
		int r = loop_run_once(l, -1);
		if (r < 0)
			return r;
	}
	return 0;
}
