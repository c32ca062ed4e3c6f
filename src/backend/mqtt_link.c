/* Reaching an MQTT broker with libmosquitto on the loop (see mqtt_link.h). */
#include "backend/mqtt_link.h"

#if EGW_HAVE_MQTT
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>

#include "base/err.h"

bool mqtt_link_is_address(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int mqtt_link_host(const struct loop_resolved *res, const char *name, bool tls, unsigned *tries,
		   char *ret_host, size_t len)
{
	char text[INET6_ADDRSTRLEN];
	const struct sockaddr_storage *addr = &res->addr[(*tries)++ % (unsigned)res->n];
	const void *a = addr->ss_family == AF_INET
		? (const void *)&((const struct sockaddr_in *)addr)->sin_addr
		: (const void *)&((const struct sockaddr_in6 *)addr)->sin6_addr;

	if (!inet_ntop(addr->ss_family, a, text, sizeof(text)))
		return -EINVAL;
	snprintf(ret_host, len, "%s", tls ? name : text);
	return 0;
}

const char *mqtt_link_connect(struct mosquitto *mosq, const char *host, int port, int keepalive)
{
	int rc = mosquitto_connect_async(mosq, host, port, keepalive);

	if (rc == MOSQ_ERR_SUCCESS)
		return NULL;
	return rc == MOSQ_ERR_ERRNO ? egw_strerror(-errno) : mosquitto_strerror(rc);
}

int mqtt_link_watch(struct loop *l, struct loop_io *io, struct mosquitto *mosq, loop_io_fn cb)
{
	int fd = mosq ? mosquitto_socket(mosq) : -1;
	uint32_t ev;

	if (fd < 0)
		return -ENOTCONN;
	ev = EPOLLIN | (mosquitto_want_write(mosq) ? EPOLLOUT : 0);
	if (io->added && io->fd != fd)
		loop_io_del(l, io);
	if (!io->added)
		return loop_io_add(l, io, fd, ev, cb);
	loop_io_mod(l, io, ev);
	return 0;
}

const char *mqtt_link_error(int rc, const char *detail)
{
	return rc == MOSQ_ERR_TLS && detail[0] ? detail : mosquitto_strerror(rc);
}
#endif
