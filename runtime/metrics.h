/*
 * The Prometheus text exposition (format 0.0.4) of sentryd's state
 * (SPEC.md 6.6 lists every metric).  Pure formatting: the caller samples
 * the kernel (sn_rt_sample) and passes what it read, so the text is a
 * function of its inputs and the golden test pins it down.
 */
#ifndef SN_METRICS_H
#define SN_METRICS_H

#include <stdio.h>

#include "rt.h"

#define SN_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* samples[i] belongs to rt->ifaces[i]; an interface whose sample failed
 * is left out.  0, or -EIO when out failed. */
int sn_metrics_render(FILE *out, const struct sn_rt *rt,
		      const struct sn_rt_sample *samples);

/* Drop reasons, in exposition order, and the reason of rule id of rt's
 * policy (NULL: the rule passes packets). */
#define SN_DROP_REASONS 4
extern const char *const sn_drop_reasons[SN_DROP_REASONS];
const char *sn_drop_reason(const struct sn_rt *rt, uint32_t id);

#endif
