/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests of the parsers for what callers send, and of the spawn error mapping. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bus-error.h"
#include "macro.h"
#include "parse.h"
#include "tap.h"

static void test_u64(void) {
        uint64_t v = 0;
        uint32_t u = 0;

        CHECK(parse_u64("0", &v) == 0 && v == 0);
        CHECK(parse_u64("18446744073709551615", &v) == 0 && v == UINT64_MAX);
        CHECK(parse_u64("18446744073709551616", &v) == -ERANGE);
        CHECK(parse_u64("", &v) == -EINVAL);
        CHECK(parse_u64("-1", &v) == -EINVAL);
        CHECK(parse_u64(" 1", &v) == -EINVAL);
        CHECK(parse_u64("1x", &v) == -EINVAL);
        CHECK(parse_uid("1000", &u) == 0 && u == 1000);
        CHECK(parse_uid("4294967295", &u) == -ERANGE);
        CHECK(parse_uid("65535", &u) == -ERANGE);
        CHECK(parse_uid("4294967294", &u) == 0 && u == 4294967294U);
}

static void test_signals(void) {
        CHECK(signal_from_string("TERM") == SIGTERM);
        CHECK(signal_from_string("SIGTERM") == SIGTERM);
        CHECK(signal_from_string("term") == SIGTERM);
        CHECK(signal_from_string("sigkill") == SIGKILL);
        CHECK(signal_from_string("15") == 15);
        CHECK(signal_from_string("64") == 64);
        CHECK(signal_from_string("65") == -EINVAL);
        CHECK(signal_from_string("0") == -EINVAL);
        CHECK(signal_from_string("RTMIN") == SIGRTMIN);
        CHECK(signal_from_string("RTMIN+2") == SIGRTMIN + 2);
        CHECK(signal_from_string("SIGRTMAX-1") == SIGRTMAX - 1);
        CHECK(signal_from_string("IOT") == SIGABRT && signal_from_string("cld") == SIGCHLD);
        char buf[16];
        CHECK(streq(signal_to_string(SIGTERM, buf), "TERM"));
        CHECK(streq(signal_to_string(SIGRTMIN + 1, buf), "RTMIN+1"));
        CHECK(signal_from_string(signal_to_string(SIGRTMAX, buf)) == SIGRTMAX);
        CHECK(signal_from_string("RTMIN+40") == -EINVAL);
        CHECK(signal_from_string("RTMIN-1") == -EINVAL);
        CHECK(signal_from_string("FOO") == -EINVAL);
        CHECK(signal_from_string("") == -EINVAL);
        CHECK(signal_from_string(NULL) == -EINVAL);
        CHECK(signal_valid(1) && signal_valid(64) && !signal_valid(0) && !signal_valid(65) &&
              !signal_valid(-1));
}

static void test_rlimits(void) {
        static const char *const names[] = {
                "cpu", "fsize", "data", "stack", "core", "rss", "nproc", "nofile",
                "memlock", "as", "locks", "sigpending", "msgqueue", "nice", "rtprio", "rttime",
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                int r = rlimit_from_name(names[i]);

                CHECK(r >= 0 && r < 16 && streq(rlimit_to_name(r), names[i]));
        }
        CHECK(rlimit_from_name("nofile") == RLIMIT_NOFILE);
        CHECK(rlimit_from_name("NOFILE") == -EINVAL);
        CHECK(rlimit_from_name("") == -EINVAL);
        CHECK(rlimit_from_name(NULL) == -EINVAL);
        CHECK(rlimit_to_name(16) == NULL && rlimit_to_name(-1) == NULL);
}

static void test_user_spec(void) {
        char *u = NULL, *g = NULL;

        CHECK(user_spec_split("root", &u, &g) == 0 && streq(u, "root") && !g);
        free(u);
        CHECK(user_spec_split("1000:100", &u, &g) == 0 && streq(u, "1000") && streq(g, "100"));
        free(u);
        free(g);
        CHECK(user_spec_split("nobody:nogroup", &u, &g) == 0 && streq(g, "nogroup"));
        free(u);
        free(g);
        u = g = NULL;
        CHECK(user_spec_split("", &u, &g) == -EINVAL);
        CHECK(user_spec_split(":", &u, &g) == -EINVAL);
        CHECK(user_spec_split("root:", &u, &g) == -EINVAL);
        CHECK(user_spec_split(":root", &u, &g) == -EINVAL);
        CHECK(user_spec_split("a:b:c", &u, &g) == -EINVAL);
        CHECK(user_spec_split("ro ot", &u, &g) == -EINVAL);
        CHECK(user_spec_split("root\n", &u, &g) == -EINVAL);
        CHECK(user_spec_valid("www-data") && user_spec_valid("0:0") && !user_spec_valid("x y"));
}

static void test_env(void) {
        CHECK(env_entry_key_len("A=1") == 1);
        CHECK(env_entry_key_len("FOO=") == 3);
        CHECK(env_entry_key_len("FOO=a=b") == 3);
        CHECK(env_entry_key_len("=x") == -EINVAL);
        CHECK(env_entry_key_len("FOO") == -EINVAL);
        CHECK(env_entry_key_len("") == -EINVAL);
}

static void test_spawn_errors(void) {
        CHECK(streq(spawn_error_name(ENOENT, "execve"), SANDBOX_ERROR("NotFound")));
        CHECK(streq(spawn_error_name(ENOENT, "chdir"), SANDBOX_ERROR("BadCwd")));
        CHECK(streq(spawn_error_name(ENOTDIR, "chdir"), SANDBOX_ERROR("BadCwd")));
        CHECK(streq(spawn_error_name(EACCES, "execve"), SANDBOX_ERROR("PermissionDenied")));
        CHECK(streq(spawn_error_name(EPERM, "setuid"), SANDBOX_ERROR("PermissionDenied")));
        CHECK(streq(spawn_error_name(ENOEXEC, "execve"), SANDBOX_ERROR("NotExecutable")));
        CHECK(streq(spawn_error_name(EISDIR, "execve"), SANDBOX_ERROR("NotExecutable")));
        CHECK(streq(spawn_error_name(ETXTBSY, "execve"), SANDBOX_ERROR("NotExecutable")));
        CHECK(streq(spawn_error_name(E2BIG, "execve"), SANDBOX_ERROR("BadArgs")));
        CHECK(streq(spawn_error_name(ELOOP, "execve"), SANDBOX_ERROR("BadArgs")));
        CHECK(streq(spawn_error_name(ENAMETOOLONG, "execve"), SANDBOX_ERROR("BadArgs")));
        CHECK(streq(spawn_error_name(EFAULT, "execve"), SANDBOX_ERROR("BadArgs")));
        CHECK(streq(spawn_error_name(EMFILE, "fork"), SANDBOX_ERROR("ResourceLimit")));
        CHECK(streq(spawn_error_name(EAGAIN, "setrlimit"), SANDBOX_ERROR("ResourceLimit")));
        CHECK(streq(spawn_error_name(ENOMEM, "fork"), SANDBOX_ERROR("OutOfMemory")));
        CHECK(streq(spawn_error_name(EIO, "execve"), SANDBOX_ERROR("Failed")));

        char buf[24];
        CHECK(streq(errno_name(ENOENT, buf), "ENOENT"));
        CHECK(streq(errno_name(-EACCES, buf), "EACCES"));
        CHECK(streq(errno_name(4000, buf), "errno 4000"));
}

int main(void) {
        test_u64();
        test_signals();
        test_rlimits();
        test_user_spec();
        test_env();
        test_spawn_errors();
        return tap_done();
}
