/* driver.c -- feeds corpus files to a fuzz target: the regression test, without libFuzzer. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "svcmapd/config.h"

/*
 * Linked with one target's .c file instead of libFuzzer, so every build
 * (gcc included, no sanitizer needed) replays the corpus and any crash file
 * saved from a fuzzer run:
 *
 *     fuzz_answer_corpus tests/fuzz/corpus/answer [FILE|DIR]...
 *
 * Each argument is a file or a directory whose regular files are fed one by
 * one, in name order. A target checks its own invariants and abort()s; the
 * driver fails if an argument cannot be read or a directory is empty, so a
 * wrong path never passes as a green test.
 */

/* Weak: a target need not define it (libFuzzer treats it the same way). */
extern int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path, size_t *count)
{
    struct diag d;
    diag_init(&d, path);
    size_t len = 0;
    char *buf = config_read(path, &len, &d); /* the daemon's own file reader */
    if (!buf)
        fputs(d.text ? d.text : "cannot read\n", stderr);
    diag_finish(&d);
    if (!buf)
        return -1;
    /* An exact-size copy, as libFuzzer passes it: ASan then sees a read one
     * byte past the input. */
    uint8_t *input = malloc(len ? len : 1);
    if (!input) {
        free(buf);
        return -1;
    }
    if (len)
        memcpy(input, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(input, len);
    free(input);
    (*count)++;
    return 0;
}

static int run_dir(const char *dir, size_t *count)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    size_t before = *count;
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        if (rc == 0 && names[i]->d_name[0] != '.' &&
            (size_t)snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name) < sizeof(path) &&
            stat(path, &st) == 0 && S_ISREG(st.st_mode))
            rc = run_file(path, count);
        free(names[i]);
    }
    free(names);
    if (rc == 0 && *count == before) {
        fprintf(stderr, "%s: no inputs\n", dir);
        rc = -1;
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    size_t count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        if ((S_ISDIR(st.st_mode) ? run_dir(argv[i], &count) : run_file(argv[i], &count)) != 0)
            return 1;
    }
    printf("%zu inputs ran without a failed check\n", count);
    return 0;
}
