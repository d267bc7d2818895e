/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Replays files or directories of inputs through a fuzz target once each, as a TAP test, for
 * builds without libFuzzer: the seed corpus then doubles as a regression suite. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Targets that need no set-up do not define it. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static unsigned n_run = 0;

static int run_file(const char *path) {
        FILE *f;
        uint8_t *buf = NULL;
        size_t n = 0, allocated = 0;

        f = fopen(path, "re");
        if (!f) {
                printf("not ok %u - %s: %s\n", ++n_run, path, strerror(errno));
                return -errno;
        }
        for (;;) {
                size_t k;

                if (n == allocated) {
                        uint8_t *b = realloc(buf, allocated ? allocated * 2 : 4096);

                        if (!b) {
                                free(buf);
                                fclose(f);
                                return -ENOMEM;
                        }
                        buf = b;
                        allocated = allocated ? allocated * 2 : 4096;
                }
                k = fread(buf + n, 1, allocated - n, f);
                if (k == 0)
                        break;
                n += k;
        }
        fclose(f);

        /* A broken invariant aborts, so reaching the line below means the input passed. */
        LLVMFuzzerTestOneInput(buf, n);
        free(buf);
        printf("ok %u - %s (%zu bytes)\n", ++n_run, path, n);
        fflush(stdout);
        return 0;
}

static int compare_names(const struct dirent **a, const struct dirent **b) {
        return strcmp((*a)->d_name, (*b)->d_name);
}

static int run_path(const char *path) {
        struct dirent **names;
        struct stat st;
        int n, r = 0;

        if (stat(path, &st) < 0) {
                printf("not ok %u - %s: %s\n", ++n_run, path, strerror(errno));
                return -errno;
        }
        if (!S_ISDIR(st.st_mode))
                return run_file(path);

        n = scandir(path, &names, NULL, compare_names);
        if (n < 0) {
                printf("not ok %u - %s: %s\n", ++n_run, path, strerror(errno));
                return -errno;
        }
        for (int i = 0; i < n; i++) {
                if (names[i]->d_name[0] != '.') {
                        char *p;

                        if (asprintf(&p, "%s/%s", path, names[i]->d_name) < 0)
                                r = -ENOMEM;
                        else {
                                if (run_file(p) < 0)
                                        r = -EIO;
                                free(p);
                        }
                }
                free(names[i]);
        }
        free(names);
        return r;
}

int main(int argc, char **argv) {
        int r = 0;

        if (LLVMFuzzerInitialize)
                LLVMFuzzerInitialize(&argc, &argv);
        for (int i = 1; i < argc; i++)
                if (run_path(argv[i]) < 0)
                        r = 1;
        printf("1..%u\n", n_run);
        return r;
}
