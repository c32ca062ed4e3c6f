/* The web UI's metrics: per-device poll latency, live stream, raw requests,
 * MQTT. */
#include "web/webui_int.h"

/* ---- metrics ------------------------------------------------------------ */

static void metric_head(struct web_buf *b, const char *name, const char *type, const char *help)
{
	web_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void dev_counter(struct web_buf *b, const char *name, const char *id, double v)
{
	web_buf_printf(b, "%s{device=\"", name);
	web_buf_label(b, id);
	web_buf_printf(b, "\"} %.17g\n", v);
}

void webui_metrics(void *ud, struct web_buf *b)
{
	struct webui *u = ud;
	struct egw *e = u->e;
	unsigned n = e->devices ? devices_count(e->devices) : 0;
	struct sse_stats ss;

	metric_head(b, "egw_device_poll_latency_seconds", "histogram",
		    "Duration of a device's poll cycle (all its reads).");
	for (unsigned i = 0; i < u->nhists; i++)
		web_buf_histogram(b, "egw_device_poll_latency_seconds", "device", u->hists[i].id,
				  lat_bounds, ARRAY_SIZE(lat_bounds), u->hists[i].hist,
				  u->hists[i].sum);

	/* daemon/devices.c publishes polls, poll errors, timeouts, reconnects,
	 * transitions, the state and the frequency lateness; these add to it. */
	static const struct {
		const char *name, *type, *help;
	} dm[] = {
		{ "egw_device_reads_total", "counter", "Modbus requests issued." },
		{ "egw_device_exceptions_total", "counter", "Modbus exception replies." },
		{ "egw_device_last_good_read_timestamp_seconds", "gauge",
		  "Wall clock time of the last complete poll (0: never)." },
		{ "egw_device_up", "gauge", "1 while the device is polling." },
	};
	for (size_t m = 0; m < ARRAY_SIZE(dm); m++) {
		metric_head(b, dm[m].name, dm[m].type, dm[m].help);
		for (unsigned i = 0; i < n; i++) {
			struct device *d = devices_get(e->devices, i);
			struct device_stats st;
			double v = 0;
			device_stats(d, &st);
			switch (m) {
			case 0:
				v = (double)st.reads;
				break;
			case 1:
				v = (double)st.exceptions;
				break;
			case 2:
				v = (double)st.last_good_ms / 1000.0;
				break;
			case 3:
				v = device_state(d) == DEV_POLLING;
				break;
			}
			dev_counter(b, dm[m].name, device_id(d), v);
		}
	}

	metric_head(b, "egw_frequency_hz", "gauge", "Latest grid frequency sample.");
	if (u->freq_samples)
		web_buf_printf(b, "egw_frequency_hz %.4f\n", u->freq_hz);
	metric_head(b, "egw_frequency_samples_total", "counter", "Grid frequency samples taken.");
	web_buf_printf(b, "egw_frequency_samples_total %" PRIu64 "\n", u->freq_samples);

	sse_hub_stats(u->hub, &ss);
	metric_head(b, "egw_sse_clients", "gauge", "Live stream (SSE) clients connected.");
	web_buf_printf(b, "egw_sse_clients %u\n", ss.clients);
	metric_head(b, "egw_sse_events_total", "counter", "Events published on the live stream.");
	web_buf_printf(b, "egw_sse_events_total %" PRIu64 "\n", ss.events);
	metric_head(b, "egw_sse_dropped_clients_total", "counter",
		    "Live stream clients dropped for falling behind.");
	web_buf_printf(b, "egw_sse_dropped_clients_total %" PRIu64 "\n", ss.dropped);
	metric_head(b, "egw_sse_rejected_clients_total", "counter",
		    "Live stream clients refused (too many).");
	web_buf_printf(b, "egw_sse_rejected_clients_total %" PRIu64 "\n", ss.rejected);

	metric_head(b, "egw_modbus_raw_requests_total", "counter",
		    "Raw Modbus requests through the API by kind (read, write, refused write).");
	web_buf_printf(b, "egw_modbus_raw_requests_total{kind=\"read\"} %" PRIu64 "\n",
		       u->raw_reads);
	web_buf_printf(b, "egw_modbus_raw_requests_total{kind=\"write\"} %" PRIu64 "\n",
		       u->raw_writes);
	web_buf_printf(b, "egw_modbus_raw_requests_total{kind=\"refused\"} %" PRIu64 "\n",
		       u->raw_refused);
}
