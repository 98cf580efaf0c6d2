/*
 * Includes and list files must be regular files: a FIFO (or a device) is
 * refused at once with a located error instead of blocking the compile -
 * sentryd recompiles on every file change and must never hang on one.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compiler/compile.h"

static bool has_code(const struct sn_diags *d, const char *code)
{
	for (size_t i = 0; i < d->n; i++)
		if (!strcmp(d->v[i].code, code))
			return true;
	return false;
}

int main(void)
{
	char dir[] = "/tmp/sn-sources-XXXXXX", fifo[64], text[256];
	struct sn_ctx ctx;
	struct sn_policy *p = NULL;
	struct sn_image *img = NULL;
	int failures = 0;

	alarm(10); /* a hang is a failure, not a stuck test run */
	if (!mkdtemp(dir))
		return 1;
	snprintf(fifo, sizeof(fifo), "%s/list.fifo", dir);
	if (mkfifo(fifo, 0600))
		return 1;
	snprintf(text, sizeof(text),
		 "include \"%s\"\nset s = file \"%s\"\nblock from @s\n"
		 "set dev = file \"/dev/zero\"\nblock from @dev to tcp\n",
		 fifo, fifo);
	sn_ctx_init(&ctx);
	int rc = sn_compile_text(&ctx, "fifo.sentry", text, strlen(text), &p, &img);

	if (rc != -EINVAL || !has_code(&ctx.diags, "E011") ||
	    !has_code(&ctx.diags, "E006")) {
		fprintf(stderr, "expected E011 and E006, got rc %d\n", rc);
		sn_diags_render_text(stderr, &ctx.diags, &ctx.sources);
		failures++;
	}
	sn_ctx_free(&ctx);
	unlink(fifo);
	rmdir(dir);
	if (failures)
		return 1;
	printf("test_sources: ok\n");
	return 0;
}
