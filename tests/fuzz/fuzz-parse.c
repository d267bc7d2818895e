/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes the parsers callers reach (numbers, signals, rlimit names, user specs, env entries)
 * against the invariants their contracts promise. Input: lines, each fed to every parser. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "env.h"
#include "fuzz.h"
#include "macro.h"
#include "parse.h"
#include "strv.h"

#define MAX_LINES 64

static bool all_digits(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return false;
        return true;
}

static void check_u64(const char *s) {
        const char *stripped = s;
        char buf[32];
        uint64_t v = 0;
        uint32_t u = 0;
        size_t len;
        int r, ru;

        r = parse_u64(s, &v);
        ru = parse_uid(s, &u);
        if (!all_digits(s)) {
                /* A long run of digits before the first non-digit reports -ERANGE rather than
                 * -EINVAL: parse_u64() checks overflow before it has seen the whole string. Either
                 * way it is refused, which is what callers rely on. */
                FUZZ_ASSERT(r == -EINVAL || r == -ERANGE);
                FUZZ_ASSERT(ru == r);
                return;
        }

        while (stripped[0] == '0' && stripped[1])
                stripped++;
        len = strlen(stripped);
        if (len > 20 || (len == 20 && strcmp(stripped, "18446744073709551615") > 0)) {
                FUZZ_ASSERT(r == -ERANGE);
                FUZZ_ASSERT(ru == -ERANGE);
                return;
        }
        FUZZ_ASSERT(r == 0);
        snprintf(buf, sizeof(buf), "%" PRIu64, v);
        FUZZ_ASSERT(streq(buf, stripped));

        /* (uid_t) -1 and its 16-bit form are never valid ids. */
        if (v >= UINT32_MAX || v == 65535)
                FUZZ_ASSERT(ru == -ERANGE);
        else {
                FUZZ_ASSERT(ru == 0);
                FUZZ_ASSERT(u == v);
        }
}

static void check_signal(const char *s) {
        char upper[256], prefixed[256];
        size_t len = strlen(s);
        uint64_t v;
        int r;

        r = signal_from_string(s);
        FUZZ_ASSERT(r == -EINVAL || (r >= 1 && r <= 64));
        FUZZ_ASSERT(r < 0 || signal_valid(r));

        if (parse_u64(s, &v) >= 0) {
                FUZZ_ASSERT(r == (v >= 1 && v <= 64 ? (int) v : -EINVAL));
                return;
        }
        if (len + 4 > sizeof(upper))
                return;

        /* Names are case-insensitive ... */
        for (size_t i = 0; i <= len; i++)
                upper[i] = (char) toupper((unsigned char) s[i]);
        FUZZ_ASSERT(signal_from_string(upper) == r);

        /* ... and the SIG prefix is optional, once. */
        if (strncasecmp(s, "SIG", 3) != 0) {
                memcpy(prefixed, "SIG", 3);
                memcpy(prefixed + 3, s, len + 1);
                FUZZ_ASSERT(signal_from_string(prefixed) == r);
        }

        /* RTMIN+n and RTMAX-n count from the C library's SIGRTMIN and SIGRTMAX, as kill(1). */
        if (strncasecmp(s, "RTMIN+", 6) == 0 && parse_u64(s + 6, &v) >= 0)
                FUZZ_ASSERT(r == (v <= (uint64_t) (SIGRTMAX - SIGRTMIN) ? SIGRTMIN + (int) v : -EINVAL));
        if (strncasecmp(s, "RTMAX-", 6) == 0 && parse_u64(s + 6, &v) >= 0)
                FUZZ_ASSERT(r == (v <= (uint64_t) (SIGRTMAX - SIGRTMIN) ? SIGRTMAX - (int) v : -EINVAL));
}

static void check_rlimit(const char *s) {
        int r = rlimit_from_name(s);

        if (r >= 0) {
                FUZZ_ASSERT(r < 16);
                FUZZ_ASSERT(rlimit_to_name(r) && streq(rlimit_to_name(r), s));
                return;
        }
        FUZZ_ASSERT(r == -EINVAL);
        for (int i = -1; i <= 17; i++)
                FUZZ_ASSERT(!rlimit_to_name(i) || !streq(rlimit_to_name(i), s));
}

/* The documented rule, written out again independently. */
static bool name_ok(const char *s, size_t n) {
        if (n == 0 || n > 255)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) s[i]) && !strchr("._-$", s[i]))
                        return false;
        return true;
}

static void check_user_spec(const char *s) {
        _cleanup_free_ char *u = NULL, *g = NULL, *joined = NULL;
        const char *colon = strchr(s, ':');
        bool expect;
        int r;

        expect = colon ? name_ok(s, (size_t) (colon - s)) && name_ok(colon + 1, strlen(colon + 1))
                       : name_ok(s, strlen(s));
        FUZZ_ASSERT(user_name_valid(s) == (!colon && expect));

        r = user_spec_split(s, &u, &g);
        FUZZ_ASSERT(r == 0 || r == -EINVAL);
        FUZZ_ASSERT((r == 0) == expect);
        FUZZ_ASSERT(user_spec_valid(s) == expect);
        if (r < 0)
                return;

        FUZZ_ASSERT(u && user_name_valid(u));
        FUZZ_ASSERT(!g == !colon);
        FUZZ_ASSERT(!g || user_name_valid(g));
        FUZZ_ASSERT(asprintf(&joined, "%s%s%s", u, g ? ":" : "", strempty(g)) >= 0);
        FUZZ_ASSERT(streq(joined, s));
}

static void check_env_entry(const char *s) {
        const char *eq = strchr(s, '=');
        int r = env_entry_key_len(s);

        if (!eq || eq == s)
                FUZZ_ASSERT(r == -EINVAL);
        else
                FUZZ_ASSERT(r == eq - s);
}

/* Valid entries only: env_find_loader_variable() and env_build() get them after validation. */
static void check_env_list(char **entries, size_t n, bool tty) {
        static const UserInfo user = {
                .uid = 1000, .gid = 1000, .name = (char *) "fuzz", .home = (char *) "/home/fuzz",
                .shell = (char *) "/bin/sh", .known = true,
        };
        static const char *const defaults[] = { "PATH", "HOME", "USER", "LOGNAME", "SHELL" };
        _cleanup_strv_free_ char **env = NULL;
        const char *found = NULL;
        size_t n_new = 0;
        char *saved;

        /* The first refused entry of each prefix: it appears with the entry that has it and then
         * stays; nothing outside the cross-user allow-list gets through. */
        for (size_t i = 1; i <= n; i++) {
                const char *f;
                bool bad_value;
                int klen;

                saved = entries[i];
                entries[i] = NULL;
                f = env_find_cross_user_refused(entries, &klen, &bad_value);
                entries[i] = saved;
                if (found)
                        FUZZ_ASSERT(f == found);
                else if (f) {
                        FUZZ_ASSERT(f == entries[i - 1]);
                        FUZZ_ASSERT(klen == env_entry_key_len(entries[i - 1]));
                        found = f;
                }
        }
        for (size_t i = 0; i < n; i++)
                if (startswith(entries[i], "LD_PRELOAD=") || startswith(entries[i], "PATH=") ||
                    startswith(entries[i], "BASH_ENV=") || startswith(entries[i], "LANG=/") ||
                    startswith(entries[i], "TZ=/") || startswith(entries[i], "GLIBC_TUNABLES="))
                        FUZZ_ASSERT(found);

        FUZZ_ASSERT(env_build(entries, &user, tty, &env) == 0);

        /* No key twice; the defaults all there; TERM only on a PTY or when asked for. */
        for (size_t i = 0; env[i]; i++) {
                int k = env_entry_key_len(env[i]);

                FUZZ_ASSERT(k > 0);
                for (size_t j = i + 1; env[j]; j++)
                        FUZZ_ASSERT(!(strncmp(env[i], env[j], (size_t) k + 1) == 0));
        }
        for (size_t i = 0; i < ELEMENTSOF(defaults); i++)
                FUZZ_ASSERT(env_get(env, defaults[i]));
        if (tty)
                FUZZ_ASSERT(env_get(env, "TERM"));

        /* Each key has the value of its last entry. */
        for (size_t i = 0; i < n; i++) {
                size_t k = (size_t) env_entry_key_len(entries[i]);
                bool last = true, is_default = false;
                char key[k + 1];
                const char *v;

                for (size_t j = i + 1; j < n; j++)
                        if (strncmp(entries[i], entries[j], k + 1) == 0)
                                last = false;
                memcpy(key, entries[i], k);
                key[k] = 0;
                v = env_get(env, key);
                FUZZ_ASSERT(v);
                if (last) {
                        FUZZ_ASSERT(streq(v, entries[i] + k + 1));
                        for (size_t d = 0; d < ELEMENTSOF(defaults); d++)
                                if (streq(key, defaults[d]))
                                        is_default = true;
                        if (tty && streq(key, "TERM"))
                                is_default = true;
                        if (!is_default)
                                n_new++;
                }
        }
        FUZZ_ASSERT(strv_length(env) == ELEMENTSOF(defaults) + (tty ? 1 : 0) + n_new);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *lines[MAX_LINES + 1] = {}, *valid[MAX_LINES + 1] = {};
        size_t n_lines = 0, n_valid = 0;
        const uint8_t *p = data, *end = data + size;

        /* A caller's strings never hold a NUL (D-Bus forbids it): a NUL ends a line as '\n' does. */
        while (p <= end && n_lines < MAX_LINES) {
                const uint8_t *e = p;

                while (e < end && *e != '\n' && *e != 0)
                        e++;
                lines[n_lines] = strndup((const char *) p, (size_t) (e - p));
                FUZZ_ASSERT(lines[n_lines]);
                n_lines++;
                p = e + 1;
        }

        for (size_t i = 0; i < n_lines; i++) {
                check_u64(lines[i]);
                check_signal(lines[i]);
                check_rlimit(lines[i]);
                check_user_spec(lines[i]);
                check_env_entry(lines[i]);
                if (env_entry_key_len(lines[i]) > 0)
                        valid[n_valid++] = lines[i];
        }
        check_env_list(valid, n_valid, size > 0 && (data[0] & 1));

        for (size_t i = 0; i < n_lines; i++)
                free(lines[i]);
        return 0;
}
