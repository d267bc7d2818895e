/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sandboxctl's JSON output: strings escaped, D-Bus values written as JSON, short or pretty. */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "json.h"
#include "macro.h"
#include "sandboxctl.h"

int json_mode_from_string(const char *s, JsonMode *ret) {
        if (!s || streq(s, "short"))
                *ret = JSON_SHORT;
        else if (streq(s, "pretty"))
                *ret = JSON_PRETTY;
        else if (streq(s, "off"))
                *ret = JSON_OFF;
        else
                return -EINVAL;
        return 0;
}

int json_mode_from_arg(const char *s, JsonMode *ret) {
        if (json_mode_from_string(s, ret) < 0)
                return log_usage_error("invalid --json= mode '%s', expected short, pretty or off", s);
        return 0;
}

void json_string(FILE *f, const char *s) {
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                switch (*p) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                case '\r':
                        fputs("\\r", f);
                        break;
                default:
                        /* D-Bus strings are valid UTF-8: only control characters need escaping. */
                        if (*p < 0x20 || *p == 0x7f)
                                fprintf(f, "\\u%04x", *p);
                        else
                                fputc(*p, f);
                }
        fputc('"', f);
}

static void json_newline(JsonWriter *w) {
        if (!w->pretty)
                return;
        fputc('\n', w->f);
        for (unsigned i = 0; i < w->depth; i++)
                fputs("  ", w->f);
}

void json_begin(JsonWriter *w, char open) {
        fputc(open, w->f);
        w->depth++;
        w->first = true;
}

void json_end(JsonWriter *w, char close) {
        w->depth--;
        if (!w->first)
                json_newline(w);
        fputc(close, w->f);
        w->first = false;
}

void json_key(JsonWriter *w, const char *key) {
        if (!w->first)
                fputc(',', w->f);
        w->first = false;
        json_newline(w);
        if (key) {
                json_string(w->f, key);
                fputs(w->pretty ? ": " : ":", w->f);
        }
}

static int json_basic(JsonWriter *w, sd_bus_message *m, char type, bool unknown_as_null) {
        union {
                uint8_t y;
                int b;
                int16_t n;
                uint16_t q;
                int32_t i;
                uint32_t u;
                int64_t x;
                uint64_t t;
                double d;
                const char *s;
                int h;
        } v;
        int r;

        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;
        switch (type) {
        case 'y': fprintf(w->f, "%u", v.y); break;
        case 'b': fputs(v.b ? "true" : "false", w->f); break;
        case 'n': fprintf(w->f, "%" PRIi16, v.n); break;
        case 'q': fprintf(w->f, "%" PRIu16, v.q); break;
        case 'i': fprintf(w->f, "%" PRIi32, v.i); break;
        case 'u': fprintf(w->f, "%" PRIu32, v.u); break;
        case 'x': fprintf(w->f, "%" PRIi64, v.x); break;
        case 't':
                if (v.t == UINT64_MAX && unknown_as_null)
                        fputs("null", w->f);
                else
                        fprintf(w->f, "%" PRIu64, v.t);
                break;
        case 'd':
                if (isfinite(v.d))
                        fprintf(w->f, "%.17g", v.d);
                else
                        fputs("null", w->f);
                break;
        case 's': case 'o': case 'g':
                json_string(w->f, v.s);
                break;
        default:
                /* A file descriptor means nothing outside this process. */
                fputs("null", w->f);
                break;
        }
        return 0;
}

int json_bus_value(JsonWriter *w, sd_bus_message *m, bool unknown_as_null) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0)
                return -EINVAL;

        switch (type) {
        case SD_BUS_TYPE_VARIANT:
        case SD_BUS_TYPE_STRUCT:
        case SD_BUS_TYPE_ARRAY: {
                bool dict = type == SD_BUS_TYPE_ARRAY && contents[0] == '{';

                r = sd_bus_message_enter_container(m, type, contents);
                if (r < 0)
                        return r;
                if (type == SD_BUS_TYPE_VARIANT)
                        r = json_bus_value(w, m, unknown_as_null);
                else {
                        json_begin(w, dict ? '{' : '[');
                        /* A dict's keys become JSON keys, written as text whatever their type. */
                        while ((r = sd_bus_message_peek_type(m, NULL, NULL)) > 0) {
                                if (dict) {
                                        char key_type;
                                        const char *entry;

                                        r = sd_bus_message_peek_type(m, NULL, &entry);
                                        if (r < 0)
                                                return r;
                                        key_type = entry[0];
                                        r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, entry);
                                        if (r < 0)
                                                return r;
                                        if (key_type == 's' || key_type == 'o' || key_type == 'g') {
                                                const char *k;

                                                r = sd_bus_message_read_basic(m, key_type, &k);
                                                if (r < 0)
                                                        return r;
                                                json_key(w, k);
                                        } else {
                                                /* Numbers as keys: written as strings. */
                                                char *buf = NULL;
                                                size_t size = 0;
                                                FILE *mem = open_memstream(&buf, &size);
                                                JsonWriter kw = { .f = mem };

                                                if (!mem)
                                                        return -ENOMEM;
                                                r = json_basic(&kw, m, key_type, false);
                                                fclose(mem);
                                                if (r < 0) {
                                                        free(buf);
                                                        return r;
                                                }
                                                json_key(w, buf);
                                                free(buf);
                                        }
                                        r = json_bus_value(w, m, unknown_as_null);
                                        if (r < 0)
                                                return r;
                                        r = sd_bus_message_exit_container(m);
                                } else {
                                        json_key(w, NULL);
                                        r = json_bus_value(w, m, unknown_as_null);
                                }
                                if (r < 0)
                                        return r;
                        }
                        if (r < 0)
                                return r;
                        json_end(w, dict ? '}' : ']');
                }
                if (r < 0)
                        return r;
                return sd_bus_message_exit_container(m);
        }
        default:
                return json_basic(w, m, type, unknown_as_null);
        }
}
