/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parsers for what callers send: numbers, signal names, rlimit names, user specs, env entries. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Decimal only, no sign, no spaces; -EINVAL or -ERANGE otherwise. */
int parse_u64(const char *s, uint64_t *ret);
int parse_u32(const char *s, uint32_t *ret);
/* A uid or gid: decimal, below (uid_t) -1, which the kernel reserves. */
int parse_uid(const char *s, uint32_t *ret);

/* "TERM", "SIGTERM", "term", "15", "RTMIN+2", "SIGRTMAX-1": the signal number, or -EINVAL. Real-time
 * names count from the C library's SIGRTMIN, as kill(1) does; numbers are 1..64. */
int signal_from_string(const char *s);
/* "TERM" for 15, "RTMIN+1", or the number as text; returns buf. */
const char *signal_to_string(int sig, char buf[static 16]);
bool signal_valid(int sig);

/* RLIMIT_* for "cpu", "nofile", ...; -EINVAL for anything else. */
int rlimit_from_name(const char *name);
const char *rlimit_to_name(int resource);

/* Splits "user[:group]" into its parts; either may be a name or a number. *group is NULL when
 * absent. -EINVAL for an empty user or group part. */
int user_spec_split(const char *spec, char **user, char **group);
/* Whether spec is of the form user_spec_split() accepts. */
bool user_spec_valid(const char *spec);
/* Whether s could name a user or group: portable characters, not too long, not numeric-looking
 * unless wholly numeric. */
bool user_name_valid(const char *s);

/* KEY=VALUE with a non-empty key free of '='. Returns the key length, or -EINVAL. */
int env_entry_key_len(const char *e);
