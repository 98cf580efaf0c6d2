/*
 * Renderings of a compiled image for people, tools and golden tests.
 * The image must have been serialised (checksum computed) first.
 */
#ifndef SN_DUMP_H
#define SN_DUMP_H

#include <stdio.h>

#include "image.h"

void sn_dump_ir(FILE *out, const struct sn_image *img);
void sn_dump_json(FILE *out, const struct sn_image *img);
/* The generated BPF constants as a C header; source names the policy. */
void sn_dump_constants(FILE *out, const struct sn_image *img,
		       const char *source);

#endif
