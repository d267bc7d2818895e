/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes exec_request_parse() with Exec(as argv, a{sv} options) messages built from the input,
 * read as a program: argv strings, then option entries with real and made-up keys, values of the
 * right and wrong types, nested variants, rlimit arrays and fds. A model of the documented rules
 * (api.md, "Errors") predicts the first invalid field; the parser must agree with it, name the
 * field in an InvalidArgs error, and leak neither memory nor fds. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "exec-request.h"
#include "fuzz.h"
#include "macro.h"
#include "parse.h"
#include "strv.h"

#define N_POOL_FDS 4
#define MAX_OPTIONS 48
#define MAX_DEPTH 80                    /* nested variants; sd-bus refuses somewhere below this */
#define LONG_BUDGET (3 * 1024 * 1024)   /* bytes of long strings one input may ask for */

static sd_bus *bus;
static int pool_fds[N_POOL_FDS];
static struct stat pool_st[N_POOL_FDS];

static const char *const option_names[] = {
        "cwd", "env", "user", "tty", "rows", "cols", "rlimits", "profile", "timeout-usec",
        "output-window", "stdin", "stdout", "stderr", "tag", "stdin-data", "max-output",
        "on-output-limit", "timeout-grace-usec",
};
static const char *const option_signatures[] = {
        "s", "as", "s", "b", "q", "q", "a(stt)", "s", "t", "t", "h", "h", "h", "s", "ay", "t", "s", "t",
};
static const char *const rlimit_names[] = {
        "cpu", "fsize", "data", "stack", "core", "rss", "nproc", "nofile", "memlock", "as", "locks",
        "sigpending", "msgqueue", "nice", "rtprio", "rttime",
};
/* Near misses and values with a meaning somewhere. */
static const char *const words[] = {
        "", "/", "/tmp", "tmp", "./x", "default", "restricted", "Default", "root", "0", "0:0",
        "root:root", "nobody:nogroup", "65535", "4294967295", "a:", ":b", "a:b:c", "$", "-",
        "A=B", "=B", "A=", "PATH=/x", "LD_PRELOAD=/x.so", "TERM=dumb", "x", "sh", "/bin/true",
        "CWD", "tty ", " env", "rlimit", "timeout", "output_window", "stdin\t", "user\n",
        "\xc3\xa9", "%s%n", "infinity", "NOFILE", "kill", "truncate", "Kill", "max_output",
};

typedef struct Model {
        char field[80];                 /* the first invalid field, empty while all is valid */
        size_t total;                   /* argv and env bytes, as the parser counts them */
        size_t long_budget;
        bool env_seen;
        bool rlimit_seen[16];
        /* What a successful parse must have produced. */
        size_t argc, envc;
        char *cwd;
        bool tty;
        unsigned rows, cols;
        uint64_t timeout_usec, output_window;
        int profile;
        int fd_index[3];
        uint64_t soft[16], hard[16];
        bool output_window_set, stdin_data_set, max_output_set, truncate;
        uint64_t max_output, timeout_grace_usec;
} Model;

static void invalid(Model *mo, const char *field) {
        if (!mo->field[0])
                snprintf(mo->field, sizeof(mo->field), "'%.64s'", field);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        int sp[2], p[2];

        FUZZ_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
        FUZZ_ASSERT(sd_bus_new(&bus) >= 0);
        FUZZ_ASSERT(sd_bus_set_fd(bus, sp[0], sp[0]) >= 0);
        FUZZ_ASSERT(sd_bus_start(bus) >= 0);
        /* sp[1] stays open and unread: the bus only has to exist to make messages. */

        pool_fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        pool_fds[1] = open("/dev/null", O_WRONLY | O_CLOEXEC);
        FUZZ_ASSERT(pipe2(p, O_CLOEXEC) == 0);
        pool_fds[2] = p[0];
        pool_fds[3] = p[1];
        for (int i = 0; i < N_POOL_FDS; i++)
                FUZZ_ASSERT(pool_fds[i] >= 0 && fstat(pool_fds[i], &pool_st[i]) == 0);
        return 0;
}

static int lowest_free_fd(void) {
        int fd = fcntl(pool_fds[0], F_DUPFD_CLOEXEC, 0);

        FUZZ_ASSERT(fd >= 0);
        close(fd);
        return fd;
}

/* A string chosen by the input, in buf (NUL-terminated, no NUL inside, valid UTF-8). */
static const char *make_string(FuzzCursor *c, Model *mo, char *buf, size_t size) {
        static const size_t long_lengths[] = {
                255, 256, PATH_MAX - 1, PATH_MAX, EXEC_STRING_MAX, EXEC_STRING_MAX + 1,
        };
        uint8_t mode = fuzz_u8(c);
        const uint8_t *raw;
        size_t n, k;

        switch (mode % 8) {
        case 0:
        case 1:
        case 2:
        case 3: /* bytes of the input, as ASCII */
                n = fuzz_bytes(c, mode % 8 == 3 ? fuzz_u16(c) % 1024 : fuzz_u8(c) % 48, &raw);
                for (k = 0; k < n && k < size - 1; k++)
                        buf[k] = raw[k] & 0x7f ? (char) (raw[k] & 0x7f) : 'x';
                buf[k] = 0;
                return buf;
        case 4:
                return words[fuzz_u8(c) % ELEMENTSOF(words)];
        case 5: { /* long, to meet the length limits */
                uint8_t b = fuzz_u8(c);

                n = b % 8 < ELEMENTSOF(long_lengths) ? long_lengths[b % 8] : fuzz_u16(c);
                if (n > mo->long_budget || n >= size)
                        n = 3;
                mo->long_budget -= n;
                memset(buf, b & 0x80 ? 'a' : '/', n);
                if (b & 0x40 && n > 2)
                        buf[1] = '=';
                buf[n] = 0;
                return buf;
        }
        case 6: { /* a word and raw bytes after it */
                const char *w = words[fuzz_u8(c) % ELEMENTSOF(words)];

                k = strlen(w);
                memcpy(buf, w, k);
                n = fuzz_bytes(c, fuzz_u8(c) % 16, &raw);
                for (size_t i = 0; i < n; i++)
                        buf[k++] = raw[i] & 0x7f ? (char) (raw[i] & 0x7f) : '_';
                buf[k] = 0;
                return buf;
        }
        default:
                return rlimit_names[fuzz_u8(c) % ELEMENTSOF(rlimit_names)];
        }
}

static uint64_t make_u64(FuzzCursor *c) {
        static const uint64_t interesting[] = { 0, 1, 1024, 65535, UINT32_MAX, UINT64_MAX - 1, UINT64_MAX };
        uint8_t b = fuzz_u8(c);

        return b < 0xc0 ? interesting[b % ELEMENTSOF(interesting)] : fuzz_u64(c);
}

/* The documented form of a user spec, written out independently of parse.c. */
static bool user_part_ok(const char *s, size_t n) {
        if (n == 0 || n > 255)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
                    !(s[i] >= '0' && s[i] <= '9') && !strchr("._-$", s[i]))
                        return false;
        return true;
}

static bool user_spec_ok(const char *s) {
        const char *colon = strchr(s, ':');

        if (!colon)
                return user_part_ok(s, strlen(s));
        return user_part_ok(s, (size_t) (colon - s)) && user_part_ok(colon + 1, strlen(colon + 1));
}

/* Appends an 'as'; 'field' names it for the model, NULL when it is not read as one. */
static int append_strv(sd_bus_message *m, FuzzCursor *c, Model *mo, char *buf, size_t size,
                       const char *field, size_t *ret_count) {
        uint8_t b = fuzz_u8(c);
        size_t count = b & 0x80 ? fuzz_u16(c) % (EXEC_ARGS_MAX + 8) : b % 6;
        int r;

        r = sd_bus_message_open_container(m, 'a', "s");
        if (r < 0)
                return r;
        for (size_t i = 0; i < count; i++) {
                const char *s = fuzz_done(c) ? "" : make_string(c, mo, buf, size);
                size_t len = strlen(s);

                r = sd_bus_message_append_basic(m, 's', s);
                if (r < 0)
                        return r;
                if (!field)
                        continue;
                if (i >= EXEC_ARGS_MAX || len > EXEC_STRING_MAX)
                        invalid(mo, field);
                mo->total += len + 1;
                if (mo->total > EXEC_TOTAL_MAX)
                        invalid(mo, field);
                if (streq(field, "argv") && i == 0 && len == 0)
                        invalid(mo, field);
                if (streq(field, "env") && env_entry_key_len(s) < 0)
                        invalid(mo, field);
        }
        if (field && streq(field, "argv") && count == 0)
                invalid(mo, field);
        *ret_count = count;
        return sd_bus_message_close_container(m);
}

/* The kernel's ceiling for nofile, which the daemon checks against (read once: the fuzzer does
 * not change it). */
static uint64_t nr_open(void) {
        static uint64_t v;
        FILE *f;

        if (v == 0) {
                f = fopen("/proc/sys/fs/nr_open", "re");
                if (!f || fscanf(f, "%" SCNu64, &v) != 1)
                        v = 1024 * 1024;
                if (f)
                        fclose(f);
        }
        return v;
}

static int append_rlimits(sd_bus_message *m, FuzzCursor *c, Model *mo, char *buf, size_t size,
                          bool as_rlimits) {
        size_t count = fuzz_u8(c) % 6;
        int r;

        r = sd_bus_message_open_container(m, 'a', "(stt)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < count; i++) {
                uint8_t b = fuzz_u8(c);
                const char *name = b < 0xe0 ? rlimit_names[b % 16] : make_string(c, mo, buf, size);
                uint64_t soft = make_u64(c), hard = b & 0x10 ? soft : make_u64(c);
                int res = -1;

                r = sd_bus_message_append(m, "(stt)", name, soft, hard);
                if (r < 0)
                        return r;
                if (!as_rlimits)
                        continue;
                for (int j = 0; j < 16; j++)
                        if (streq(name, rlimit_names[j]))
                                res = j;
                if (res < 0 || soft > hard || mo->rlimit_seen[res] ||
                    (res == RLIMIT_NOFILE && (soft < 3 || hard > nr_open()))) {
                        invalid(mo, "rlimits");
                        continue;
                }
                mo->rlimit_seen[res] = true;
                mo->soft[res] = soft;
                mo->hard[res] = hard;
        }
        return sd_bus_message_close_container(m);
}

/* Appends a value of the given type; 'key' is the option it is read as when the type is the
 * option's own, else NULL. */
static int append_value(sd_bus_message *m, FuzzCursor *c, Model *mo, char *buf, size_t size,
                        const char *type, const char *key, unsigned depth);

static int append_nested(sd_bus_message *m, FuzzCursor *c, Model *mo, char *buf, size_t size,
                         unsigned depth) {
        static const char *const inner[] = { "s", "b", "q", "t", "as", "a(stt)", "h", "u" };
        unsigned levels = fuzz_u8(c) % MAX_DEPTH;
        const char *type = inner[fuzz_u8(c) % ELEMENTSOF(inner)];
        unsigned opened = 0;
        int r = 0;

        /* The outermost variant is the option's own: levels + 1 variants in all. */
        for (; opened < levels && depth + opened < MAX_DEPTH; opened++) {
                r = sd_bus_message_open_container(m, 'v', "v");
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_open_container(m, 'v', type);
        if (r < 0)
                return r;
        r = append_value(m, c, mo, buf, size, type, NULL, depth + opened + 1);
        if (r < 0)
                return r;
        for (unsigned i = 0; i <= opened; i++) {
                r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int append_dict(sd_bus_message *m, FuzzCursor *c, Model *mo, char *buf, size_t size,
                       unsigned depth) {
        size_t count = fuzz_u8(c) % 4;
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < count && depth < MAX_DEPTH; i++) {
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r < 0)
                        return r;
                r = sd_bus_message_append_basic(m, 's', option_names[fuzz_u8(c) % ELEMENTSOF(option_names)]);
                if (r < 0)
                        return r;
                r = sd_bus_message_open_container(m, 'v', "s");
                if (r < 0)
                        return r;
                r = sd_bus_message_append_basic(m, 's', make_string(c, mo, buf, size));
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

static void model_option(Model *mo, const char *key, const char *s, uint64_t u, size_t count) {
        if (streq(key, "cwd")) {
                if (strlen(s) >= PATH_MAX || s[0] != '/')
                        invalid(mo, key);
                free(mo->cwd);
                mo->cwd = strdup(s);
                FUZZ_ASSERT(mo->cwd);
        } else if (streq(key, "user")) {
                if (strlen(s) >= PATH_MAX || !user_spec_ok(s))
                        invalid(mo, key);
        } else if (streq(key, "profile")) {
                if (streq(s, "default"))
                        mo->profile = PROFILE_DEFAULT;
                else if (streq(s, "restricted"))
                        mo->profile = PROFILE_RESTRICTED;
                else
                        invalid(mo, key);
        } else if (streq(key, "tty"))
                mo->tty = u;
        else if (streq(key, "rows") || streq(key, "cols")) {
                if (u == 0)
                        invalid(mo, key);
                *(streq(key, "rows") ? &mo->rows : &mo->cols) = (unsigned) u;
        } else if (streq(key, "timeout-usec"))
                mo->timeout_usec = u;
        else if (streq(key, "output-window"))
                mo->output_window = u;
        else if (streq(key, "stdin"))
                mo->fd_index[0] = (int) u;
        else if (streq(key, "stdout"))
                mo->fd_index[1] = (int) u;
        else if (streq(key, "stderr"))
                mo->fd_index[2] = (int) u;
        else if (streq(key, "env"))
                mo->envc = count;
        else if (streq(key, "tag")) {
                if (strlen(s) > EXEC_TAG_MAX)
                        invalid(mo, key);
        } else if (streq(key, "stdin-data")) {
                if (count > EXEC_STDIN_DATA_MAX)
                        invalid(mo, key);
                mo->stdin_data_set = true;
        } else if (streq(key, "max-output")) {
                mo->max_output = u;
                mo->max_output_set = true;
        } else if (streq(key, "on-output-limit")) {
                if (streq(s, "kill"))
                        mo->truncate = false;
                else if (streq(s, "truncate"))
                        mo->truncate = true;
                else
                        invalid(mo, key);
        } else if (streq(key, "timeout-grace-usec"))
                mo->timeout_grace_usec = u;
        if (streq(key, "output-window"))
                mo->output_window_set = true;
}

/* The rules between options and those of the method, checked once all options are read:
 * the field the parser must name, or "" when the request is valid. */
static const char *model_expect(const Model *mo, ExecKind kind) {
        if (mo->field[0])
                return mo->field;
        if (mo->stdin_data_set && mo->fd_index[0] >= 0)
                return "stdin-data";
        if (mo->timeout_grace_usec > 0 && mo->timeout_usec == 0)
                return "timeout-grace-usec";
        if (kind == EXEC_KIND_EXEC) {
                if (mo->max_output_set && mo->max_output == 0)
                        return "max-output";
                if (mo->truncate)
                        return "on-output-limit";
                return "";
        }
        if (mo->output_window_set)
                return "output-window";
        if (mo->max_output_set && mo->max_output > RUN_OUTPUT_MAX)
                return "max-output";
        return "";
}

static int append_value(sd_bus_message *m, FuzzCursor *c, Model *mo, char *buf, size_t size,
                        const char *type, const char *key, unsigned depth) {
        int r;

        if (streq(type, "s")) {
                const char *s = make_string(c, mo, buf, size);

                r = sd_bus_message_append_basic(m, 's', s);
                if (r >= 0 && key)
                        model_option(mo, key, s, 0, 0);
                return r;
        }
        if (streq(type, "b")) {
                int b = fuzz_u8(c) & 1;

                r = sd_bus_message_append_basic(m, 'b', &b);
                if (r >= 0 && key)
                        model_option(mo, key, NULL, (uint64_t) b, 0);
                return r;
        }
        if (streq(type, "q")) {
                uint16_t q = fuzz_u8(c) & 1 ? 0 : fuzz_u16(c);

                r = sd_bus_message_append_basic(m, 'q', &q);
                if (r >= 0 && key)
                        model_option(mo, key, NULL, q, 0);
                return r;
        }
        if (streq(type, "t")) {
                uint64_t t = make_u64(c);

                r = sd_bus_message_append_basic(m, 't', &t);
                if (r >= 0 && key)
                        model_option(mo, key, NULL, t, 0);
                return r;
        }
        if (streq(type, "h")) {
                unsigned i = fuzz_u8(c) % N_POOL_FDS;

                r = sd_bus_message_append_basic(m, 'h', &pool_fds[i]);
                if (r >= 0 && key)
                        model_option(mo, key, NULL, i, 0);
                return r;
        }
        if (streq(type, "as")) {
                bool is_env = key && streq(key, "env");
                size_t count = 0;

                if (is_env && mo->env_seen)
                        invalid(mo, "env");
                r = append_strv(m, c, mo, buf, size, is_env && !mo->env_seen ? "env" : NULL, &count);
                if (r >= 0 && is_env && !mo->env_seen)
                        model_option(mo, key, NULL, 0, count);
                if (is_env)
                        mo->env_seen = true;
                return r;
        }
        if (streq(type, "a(stt)"))
                return append_rlimits(m, c, mo, buf, size, !!key);
        if (streq(type, "v"))
                return append_nested(m, c, mo, buf, size, depth);
        if (streq(type, "a{sv}"))
                return append_dict(m, c, mo, buf, size, depth + 1);
        if (streq(type, "(stt)"))
                return sd_bus_message_append(m, "(stt)", "nofile", make_u64(c), make_u64(c));
        if (streq(type, "ay")) {
                const uint8_t *raw;
                size_t n = fuzz_bytes(c, fuzz_u8(c), &raw);

                r = sd_bus_message_append_array(m, 'y', raw, n);
                if (r >= 0 && key)
                        model_option(mo, key, NULL, 0, n);
                return r;
        }
        if (streq(type, "aas"))
                return sd_bus_message_append(m, "aas", 1, 2, "a", "b");
        if (streq(type, "a(st)"))
                return sd_bus_message_append(m, "a(st)", 1, "nofile", (uint64_t) 1);
        if (streq(type, "o"))
                return sd_bus_message_append_basic(m, 'o', "/org/example");
        if (streq(type, "g"))
                return sd_bus_message_append_basic(m, 'g', "a(stt)");
        if (streq(type, "d")) {
                double d = (double) fuzz_u16(c);

                return sd_bus_message_append_basic(m, 'd', &d);
        }
        if (strlen(type) == 1) { /* u i y n x: numbers of other widths */
                uint64_t v = make_u64(c);

                return sd_bus_message_append_basic(m, type[0], &v);
        }
        return -EINVAL;
}

static int append_option(sd_bus_message *m, FuzzCursor *c, Model *mo, char *buf, size_t size) {
        static const char *const other_types[] = {
                "s", "b", "q", "t", "as", "a(stt)", "h", "v", "a{sv}", "(stt)", "ay", "aas", "a(st)",
                "o", "g", "d", "u", "i", "y", "n", "x",
        };
        uint8_t kb = fuzz_u8(c), tb = fuzz_u8(c);
        const char *key, *type;
        int known = -1, r;
        char keybuf[1100];

        if (kb % 24 < ELEMENTSOF(option_names))
                key = option_names[kb % 24];
        else if (kb % 24 == 23)
                key = words[fuzz_u8(c) % ELEMENTSOF(words)];
        else {
                key = make_string(c, mo, buf, size);
                if (strlen(key) >= sizeof(keybuf))
                        key = "";
                strcpy(keybuf, key);
                key = keybuf;
        }
        for (size_t i = 0; i < ELEMENTSOF(option_names); i++)
                if (streq(key, option_names[i]))
                        known = (int) i;

        /* Mostly the option's own type, so that the values themselves are exercised. */
        if (tb < 0xa0 && known >= 0)
                type = option_signatures[known];
        else
                type = other_types[tb % ELEMENTSOF(other_types)];

        if (known < 0)
                invalid(mo, key);
        else if (!streq(type, option_signatures[known]))
                invalid(mo, key);

        r = sd_bus_message_open_container(m, 'e', "sv");
        if (r < 0)
                return r;
        r = sd_bus_message_append_basic(m, 's', key);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'v', type);
        if (r < 0)
                return r;
        r = append_value(m, c, mo, buf, size, type,
                         known >= 0 && streq(type, option_signatures[known]) ? key : NULL, 1);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static bool same_file(int fd, int pool_index) {
        struct stat st;

        return fd >= 3 && fstat(fd, &st) == 0 && st.st_dev == pool_st[pool_index].st_dev &&
                st.st_ino == pool_st[pool_index].st_ino;
}

static void check_result(const Model *mo, ExecKind kind, int r, const ExecRequest *req,
                         const sd_bus_error *error) {
        const char *field = model_expect(mo, kind);
        static int verbose = -1;

        /* FUZZ_VERBOSE=1 says what each input came to, to check what a hand-made seed does. */
        if (verbose < 0)
                verbose = !!getenv("FUZZ_VERBOSE");
        if (verbose)
                fprintf(stderr, "model (kind %i): %s; parser: r=%i %s: %s\n", (int) kind,
                        field[0] ? field : "valid", r,
                        strempty(error->name), strempty(error->message));
        if (field[0]) {
                /* Invalid: InvalidArgs naming the first bad field, and -EINVAL. */
                if (r >= 0 || !sd_bus_error_has_name(error, SD_BUS_ERROR_INVALID_ARGS) ||
                    !strstr(error->message, field))
                        fprintf(stderr, "expected InvalidArgs naming %s, got r=%i %s: %s\n", field, r,
                                strempty(error->name), strempty(error->message));
                FUZZ_ASSERT(r == -EINVAL);
                FUZZ_ASSERT(sd_bus_error_has_name(error, SD_BUS_ERROR_INVALID_ARGS));
                FUZZ_ASSERT(strstr(error->message, field));
                return;
        }

        if (r < 0)
                fprintf(stderr, "expected success, got r=%i %s: %s\n", r, strempty(error->name),
                        strempty(error->message));
        FUZZ_ASSERT(r >= 0);
        FUZZ_ASSERT(!sd_bus_error_is_set(error));
        FUZZ_ASSERT(strv_length(req->argv) == mo->argc);
        FUZZ_ASSERT(req->argv[0] && req->argv[0][0]);
        FUZZ_ASSERT(strv_length(req->env) == mo->envc);
        for (size_t i = 0; req->env && req->env[i]; i++)
                FUZZ_ASSERT(env_entry_key_len(req->env[i]) > 0);
        FUZZ_ASSERT(!req->cwd == !mo->cwd);
        FUZZ_ASSERT(!req->cwd || (req->cwd[0] == '/' && streq(req->cwd, mo->cwd)));
        FUZZ_ASSERT(!req->user || user_spec_ok(req->user));
        FUZZ_ASSERT(req->tty == mo->tty);
        FUZZ_ASSERT(req->rows == mo->rows && req->cols == mo->cols);
        FUZZ_ASSERT(req->rows >= 1 && req->cols >= 1);
        FUZZ_ASSERT(req->timeout_usec == mo->timeout_usec);
        FUZZ_ASSERT(req->output_window == mo->output_window);
        FUZZ_ASSERT((int) req->profile == mo->profile);
        for (int i = 0; i < 16; i++) {
                FUZZ_ASSERT(req->rlimit_set[i] == mo->rlimit_seen[i]);
                if (req->rlimit_set[i])
                        FUZZ_ASSERT(req->rlimits[i].rlim_cur == mo->soft[i] &&
                                    req->rlimits[i].rlim_max == mo->hard[i] &&
                                    req->rlimits[i].rlim_cur <= req->rlimits[i].rlim_max);
        }
        for (int i = 0; i < 3; i++)
                FUZZ_ASSERT(mo->fd_index[i] < 0 ? req->fds[i] == -EBADF
                                                : same_file(req->fds[i], mo->fd_index[i]));
        FUZZ_ASSERT(req->stdin_data_set == mo->stdin_data_set);
        FUZZ_ASSERT(req->timeout_grace_usec == mo->timeout_grace_usec);
        if (kind == EXEC_KIND_EXEC)
                FUZZ_ASSERT(req->max_output_set == mo->max_output_set &&
                            (!mo->max_output_set || req->max_output == mo->max_output));
        else
                FUZZ_ASSERT(req->max_output_set &&
                            req->max_output == (mo->max_output_set ? mo->max_output : RUN_OUTPUT_DEFAULT) &&
                            req->max_output <= RUN_OUTPUT_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static char buf[EXEC_STRING_MAX + 16];
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        FuzzCursor c = { data, size };
        sd_bus_message *m = NULL;
        ExecRequest req;
        Model mo = {
                .long_budget = LONG_BUDGET,
                .rows = 24,
                .cols = 80,
                .profile = PROFILE_DEFAULT,
                .fd_index = { -1, -1, -1 },
        };
        int r, first_free_fd = lowest_free_fd();

        FUZZ_ASSERT(sd_bus_message_new_method_call(bus, &m, "org.example.Sandbox1", "/org/example/Sandbox1",
                                                   "org.example.Sandbox1", "Exec") >= 0);

        r = append_strv(m, &c, &mo, buf, sizeof(buf), "argv", &mo.argc);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        for (unsigned i = 0; r >= 0 && i < MAX_OPTIONS && !fuzz_done(&c); i++)
                r = append_option(m, &c, &mo, buf, sizeof(buf));
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_seal(m, 1, 0);
        if (r >= 0)
                r = sd_bus_message_rewind(m, true);
        if (r < 0) {
                /* A message sd-bus itself will not build (too deep, too big) never reaches the
                 * daemon either. */
                free(mo.cwd);
                sd_bus_message_unref(m);
                return -1;
        }

        /* The same message read as Exec, then as Run: the same options, the rules of each. */
        for (ExecKind kind = EXEC_KIND_EXEC; kind <= EXEC_KIND_RUN; kind++) {
                sd_bus_error_free(&error);
                FUZZ_ASSERT(sd_bus_message_rewind(m, true) >= 0);
                exec_request_init(&req);
                req.kind = kind;
                r = exec_request_parse(m, &req, &error);
                check_result(&mo, kind, r, &req, &error);
                exec_request_done(&req);
        }
        sd_bus_message_unref(m);
        free(mo.cwd);

        /* Every fd the message and the request took is closed again. */
        FUZZ_ASSERT(lowest_free_fd() == first_free_fd);
        return 0;
}
