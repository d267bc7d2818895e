/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sandboxctl's JSON output: strings escaped, D-Bus values written as JSON, short or pretty. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-bus.h>

typedef enum JsonMode {
        JSON_OFF,
        JSON_SHORT,     /* one line */
        JSON_PRETTY,    /* indented, one member per line */
} JsonMode;

/* "short", "pretty" or "off" (NULL: short, for a bare --json); -EINVAL for anything else. */
int json_mode_from_string(const char *s, JsonMode *ret);
/* The same for an option's argument: 0, or the usage error (EXIT_USAGE), logged. */
int json_mode_from_arg(const char *s, JsonMode *ret);

typedef struct JsonWriter {
        FILE *f;
        bool pretty;
        unsigned depth;
        bool first;     /* nothing written yet in the innermost object or array */
} JsonWriter;

void json_begin(JsonWriter *w, char open);      /* '{' or '[' */
void json_end(JsonWriter *w, char close);       /* '}' or ']' */
/* Before each member of an object (key) or element of an array (key NULL). */
void json_key(JsonWriter *w, const char *key);
void json_string(FILE *f, const char *s);
/* Writes the value the message is at (a variant's contents, a basic value, an array, a struct, a
 * dict) and moves past it. 2^64-1 in a 't' is written as null when unknown_as_null: it is how
 * sd-bus services say "unknown", and beyond what JSON numbers hold exactly. */
int json_bus_value(JsonWriter *w, sd_bus_message *m, bool unknown_as_null);
