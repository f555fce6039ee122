/*
 * replay_main.c: runs a fuzz target over every file of a corpus directory.
 *
 * Built into every fuzz target's *_replay executable, so ctest replays the seeds
 * and every crash or new-coverage input fuzzing has kept.  It fails when the
 * directory is missing or empty: a replay of nothing would be a test that cannot
 * fail.  A crash in the target fails the test by itself (signal, or a sanitizer).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT (1u << 20)

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    buf = malloc(MAX_INPUT);
    if (buf == NULL) {
        fclose(f);
        return -1;
    }
    n = fread(buf, 1, MAX_INPUT, f);
    fclose(f);
    /* Copy into an exact-size allocation so ASan catches reads past the input. */
    uint8_t *exact = malloc(n ? n : 1);
    if (exact == NULL) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

int main(int argc, char **argv)
{
    DIR *d;
    struct dirent *e;
    unsigned count = 0;
    char path[4096];

    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    d = opendir(argv[1]);
    if (d == NULL) {
        fprintf(stderr, "replay: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", argv[1], e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (replay_file(path) != 0) {
            closedir(d);
            return 1;
        }
        count++;
    }
    closedir(d);
    if (count == 0) {
        fprintf(stderr, "replay: %s holds no inputs\n", argv[1]);
        return 1;
    }
    printf("replayed %u inputs from %s\n", count, argv[1]);
    return 0;
}
