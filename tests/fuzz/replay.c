/* replay.c: runs a fuzz target once over every file of a corpus directory (no libFuzzer needed). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads a whole file into an exact-size heap block, so that ASan sees any overread. */
static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		fclose(f);
		return NULL;
	}
	size_t want = (size_t)st.st_size;
	uint8_t *p = malloc(want ? want : 1);
	*n = p ? fread(p, 1, want, f) : 0;
	fclose(f);
	return p;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	DIR *d = opendir(argv[1]);
	if (!d) {
		perror(argv[1]);
		return 2;
	}
	unsigned passed = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", argv[1], de->d_name);
		size_t n = 0;
		uint8_t *p = slurp(path, &n);
		if (!p)
			continue;
		/* A crash aborts the process, so reaching the end means every input passed. */
		LLVMFuzzerTestOneInput(p, n);
		free(p);
		passed++;
	}
	closedir(d);
	printf("%u passed, 0 failed\n", passed);
	return passed ? 0 : 1;
}
