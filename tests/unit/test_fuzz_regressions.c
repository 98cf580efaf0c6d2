/*
 * Replays the committed fuzz seeds and every input a fuzzer ever found a
 * bug with (tests/fuzz/regressions/) through the fuzz harnesses, in the
 * normal build and under `make test-sanitize`, so a fixed bug stays fixed.
 * Policy inputs are files named policy-*, image inputs image-*.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/harness.h"

static int replay_dir(const char *dir, int (*one)(const uint8_t *, size_t),
		      const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d) {
		fprintf(stderr, "cannot open %s\n", dir);
		return -1;
	}
	while ((e = readdir(d))) {
		char path[4096];
		FILE *f;

		if (e->d_name[0] == '.' ||
		    (prefix && strncmp(e->d_name, prefix, strlen(prefix))))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		f = fopen(path, "rb");
		if (!f)
			continue;
		uint8_t *buf = malloc(1 << 24);
		size_t len = buf ? fread(buf, 1, 1 << 24, f) : 0;

		fclose(f);
		if (!buf)
			return -1;
		one(buf, len); /* aborts on a broken invariant */
		free(buf);
		n++;
	}
	closedir(d);
	return n;
}

int main(void)
{
	int a = replay_dir("tests/fuzz/seeds/policy", sn_fuzz_policy_one, NULL);
	int b = replay_dir("tests/fuzz/seeds/image", sn_fuzz_image_one, NULL);
	int c = replay_dir("tests/fuzz/regressions", sn_fuzz_policy_one, "policy-");
	int d = replay_dir("tests/fuzz/regressions", sn_fuzz_image_one, "image-");

	if (a <= 0 || b < 0 || c < 0 || d < 0) {
		fprintf(stderr, "seed corpus missing (run from the repo root)\n");
		return 1;
	}
	printf("replayed %d policy seeds, %d image seeds, %d+%d regressions\n",
	       a, b, c, d);
	return 0;
}
