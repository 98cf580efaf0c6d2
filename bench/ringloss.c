/*
 * bench/flood's ring-loss observer, userspace side: loads
 * ringloss.bpf.c, collects its episodes and puts each loss episode down
 * to a cause (bench/ringloss.h).
 */
#include "bench/ringloss.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bench/die.h"

/* A loss episode longer than this is the receiver not keeping up (the
 * max phase overflows the ring by design), not a stall. */
#define OVERLOAD_NS 5000000ull
/* A stall explains a loss episode when it is this long ... */
#define CAUSE_MIN_NS 100000ull
/* ... and overlaps the episode or ends at most this much before it (the
 * ring fills in 256 us at 1 Mpps, then losses begin). */
#define CAUSE_LEAD_NS 300000ull

static int on_event(void *ctx, void *data, size_t len)
{
	struct ringloss *r = ctx;

	if (len < sizeof(struct ringloss_event))
		return 0;
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 1024;
		struct ringloss_event *ev = realloc(r->ev, cap * sizeof(*ev));

		if (!ev)
			die("ringloss: out of memory");
		r->ev = ev;
		r->cap = cap;
	}
	memcpy(&r->ev[r->n++], data, sizeof(struct ringloss_event));
	return 0;
}

void ringloss_open(struct ringloss *r, const char *obj, int rx_cpu)
{
	static const char *const progs[] = { "ringloss_xmit", "ringloss_switch",
					     "ringloss_drain" };
	struct ringloss_conf conf = { .rx_cpu = (__u32)rx_cpu };
	uint32_t zero = 0;

	memset(r, 0, sizeof(*r));
	r->obj = bpf_object__open_file(obj, NULL);
	if (!r->obj || bpf_object__load(r->obj))
		die("cannot load %s: %s", obj, strerror(errno));
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		struct bpf_program *p = bpf_object__find_program_by_name(r->obj, progs[i]);

		if (!p)
			die("%s: no program %s", obj, progs[i]);
		r->links[i] = bpf_program__attach(p);
		if (!r->links[i])
			die("cannot attach %s: %s", progs[i], strerror(errno));
	}
	r->conf_fd = bpf_object__find_map_fd_by_name(r->obj, "ringloss_conf");
	r->bss_fd = bpf_object__find_map_fd_by_name(r->obj, "ringloss_st");
	int ev_fd = bpf_object__find_map_fd_by_name(r->obj, "ringloss_events");

	if (r->conf_fd < 0 || r->bss_fd < 0 || ev_fd < 0)
		die("%s: not the ring-loss observer", obj);
	if (bpf_map_update_elem(r->conf_fd, &zero, &conf, BPF_ANY))
		die("ringloss: cannot configure: %s", strerror(errno));
	r->rb = ring_buffer__new(ev_fd, on_event, r, NULL);
	if (!r->rb)
		die("ringloss: no ring buffer: %s", strerror(errno));
}

void ringloss_watch(struct ringloss *r, int ifindex)
{
	struct ringloss_conf conf;
	uint32_t zero = 0;

	if (bpf_map_lookup_elem(r->conf_fd, &zero, &conf))
		die("ringloss: cannot read its configuration: %s", strerror(errno));
	conf.ifindex = ifindex;
	if (bpf_map_update_elem(r->conf_fd, &zero, &conf, BPF_ANY))
		die("ringloss: cannot configure: %s", strerror(errno));
}

static bool explains(const struct ringloss_event *cause, uint64_t len,
		     const struct ringloss_event *loss)
{
	return len >= CAUSE_MIN_NS && cause->start_ns <= loss->end_ns &&
	       cause->end_ns + CAUSE_LEAD_NS >= loss->start_ns;
}

/* The episode still open in the program, as an event (kind 0: none). */
static struct ringloss_event open_event(const struct ringloss_open *o, __u32 kind)
{
	struct ringloss_event e = { 0 };

	if (o->start_ns) {
		e.kind = kind;
		e.start_ns = o->start_ns;
		e.end_ns = o->last_ns;
		e.amount = o->amount;
	}
	return e;
}

void ringloss_window(struct ringloss *r, uint64_t t0_ns, uint64_t t1_ns,
		     struct ringloss_sum *out)
{
	struct ringloss_state st;
	struct ringloss_event extra[2];
	uint32_t zero = 0;

	memset(out, 0, sizeof(*out));
	ring_buffer__consume(r->rb);
	if (bpf_map_lookup_elem(r->bss_fd, &zero, &st))
		die("ringloss: cannot read its state: %s", strerror(errno));
	out->lost_events = st.lost_events - r->lost_seen;
	r->lost_seen = st.lost_events;
	extra[0] = open_event(&st.loss, RINGLOSS_LOSS);
	extra[1] = open_event(&st.drain, RINGLOSS_DRAIN);

	size_t n = r->n + 2;

	for (size_t i = 0; i < n; i++) {
		const struct ringloss_event *e = i < r->n ? &r->ev[i] : &extra[i - r->n];
		uint64_t len = e->end_ns - e->start_ns;

		if (e->kind == RINGLOSS_STEAL && e->end_ns >= t0_ns && e->end_ns < t1_ns) {
			out->steal_ns += e->amount;
			if (e->amount > out->steal_max_ns)
				out->steal_max_ns = e->amount;
		}
		if (e->kind == RINGLOSS_DRAIN && e->start_ns >= t0_ns && e->start_ns < t1_ns &&
		    len >= RINGLOSS_DRAIN_MIN_NS) {
			out->drains++;
			if (len > out->drain_max_ns)
				out->drain_max_ns = len;
		}
		if (e->kind != RINGLOSS_LOSS || e->start_ns < t0_ns || e->start_ns >= t1_ns)
			continue;
		out->episodes++;
		out->frames += e->amount;
		if (len > out->longest_ns)
			out->longest_ns = len;
		if (len > OVERLOAD_NS) {
			out->overload++;
			out->frames_overload += e->amount;
			continue;
		}
		/* Host steal first: it also stalls whatever was draining. */
		bool steal = false, drain = false;

		for (size_t j = 0; j < n && !steal; j++) {
			const struct ringloss_event *c = j < r->n ? &r->ev[j] : &extra[j - r->n];

			if (c->kind == RINGLOSS_STEAL)
				steal = explains(c, c->amount, e);
			else if (c->kind == RINGLOSS_DRAIN && !drain)
				drain = explains(c, c->end_ns - c->start_ns, e);
		}
		if (steal) {
			out->after_steal++;
			out->frames_steal += e->amount;
		} else if (drain) {
			out->after_drain++;
			out->frames_drain += e->amount;
		}
	}
	/* Windows come in order: what ended too early to explain a loss
	 * after t1 is done with, so later windows do not scan it again. */
	size_t kept = 0;

	for (size_t i = 0; i < r->n; i++)
		if (r->ev[i].end_ns + CAUSE_LEAD_NS >= t1_ns)
			r->ev[kept++] = r->ev[i];
	r->n = kept;
}

void ringloss_close(struct ringloss *r)
{
	ring_buffer__free(r->rb);
	for (size_t i = 0; i < sizeof(r->links) / sizeof(r->links[0]); i++)
		bpf_link__destroy(r->links[i]);
	bpf_object__close(r->obj);
	free(r->ev);
	memset(r, 0, sizeof(*r));
}
