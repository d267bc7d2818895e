/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "log.h"
#include "run.h"
#include "session.h"

typedef struct RunBuffer {
        uint8_t *data;
        size_t size, alloc;
} RunBuffer;

struct RunSink {
        sd_bus_message *call;           /* answered at the end */
        bool text;                      /* RunText */
        uint64_t reserved;              /* counted in Manager.run_output_* */
        uint64_t keep_max;              /* kept over both streams: what one reply may carry */
        uint64_t kept;
        RunBuffer out[2];
};

int run_sink_new(Manager *m, uid_t owner_uid, sd_bus_message *call, const ExecRequest *req,
                 RunSink **ret, sd_bus_error *error) {
        uint64_t reserve = 2 * req->max_output;
        bool on_bus = sd_bus_message_get_bus(call) == m->bus;
        RunSink *r;

        if (uid_count_get(m->run_output_per_uid, owner_uid) + reserve > RUN_OUTPUT_PER_UID_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                         "Too much output of Run held for uid %u: its Runs may keep "
                                         "%u MiB in all (twice each one's max-output).",
                                         (unsigned) owner_uid, RUN_OUTPUT_PER_UID_MAX / (1024 * 1024));
        if (m->run_output_total + reserve > RUN_OUTPUT_TOTAL_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                         "Too much output of Run held (%u MiB in all); try again "
                                         "later.", RUN_OUTPUT_TOTAL_MAX / (1024 * 1024));
        r = calloc(1, sizeof(RunSink));
        if (!r)
                return -ENOMEM;
        r->call = sd_bus_message_ref(call);
        r->text = req->kind == EXEC_KIND_RUN_TEXT;
        r->reserved = reserve;
        r->keep_max = on_bus ? RUN_REPLY_BUS_OUTPUT_MAX : UINT64_MAX;
        uid_count_add(m->run_output_per_uid, owner_uid, (int64_t) reserve);
        m->run_output_total += reserve;
        *ret = r;
        return 0;
}

RunSink *run_sink_free(Manager *m, uid_t owner_uid, RunSink *r) {
        if (!r)
                return NULL;
        uid_count_add(m->run_output_per_uid, owner_uid, -(int64_t) r->reserved);
        m->run_output_total -= r->reserved;
        sd_bus_message_unref(r->call);
        free(r->out[0].data);
        free(r->out[1].data);
        free(r);
        return NULL;
}

void run_sink_add(RunSink *r, unsigned stream, const void *data, size_t size) {
        RunBuffer *b = &r->out[stream];
        size_t keep = (size_t) MIN((uint64_t) size, r->keep_max - r->kept);

        if (keep == 0)
                return;
        if (b->size + keep > b->alloc) {
                size_t want = MAX(b->alloc * 2, b->size + keep);
                uint8_t *n = realloc(b->data, MAX(want, (size_t) 4096));

                if (!n) {
                        /* counted, not kept: the reply says it was cut */
                        log_warning("Run output: out of memory, dropping %zu bytes.", keep);
                        return;
                }
                b->data = n;
                b->alloc = MAX(want, (size_t) 4096);
        }
        memcpy(b->data + b->size, data, keep);
        b->size += keep;
        r->kept += keep;
}

/* The length of a valid UTF-8 sequence at p (1-4), or 0 if there is none: no overlongs, no
 * surrogates, nothing above U+10FFFF, no NUL. */
static size_t utf8_valid_at(const uint8_t *p, size_t left) {
        uint8_t c = p[0];
        size_t n;
        uint32_t cp;

        if (c == 0)
                return 0;
        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf)
                n = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
                n = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
                n = 4, cp = c & 0x07;
        else
                return 0;
        if (left < n)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (p[i] & 0x3f);
        }
        if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
                return 0;
        return n;
}

char *utf8_sanitize(const void *data, size_t size, size_t max, bool *ret_cut) {
        static const uint8_t replacement[] = { 0xef, 0xbf, 0xbd };
        const uint8_t *p = data;
        size_t alloc = MIN(size, max) + 1, len = 0;
        char *out = malloc(alloc);

        *ret_cut = false;
        if (!out)
                return NULL;
        for (size_t i = 0; i < size;) {
                size_t n = utf8_valid_at(p + i, size - i);
                const uint8_t *src = n > 0 ? p + i : replacement;
                size_t add = n > 0 ? n : sizeof replacement;

                if (len + add > max) {
                        *ret_cut = true;
                        break;
                }
                if (len + add + 1 > alloc) {
                        size_t want = MIN(MAX(alloc * 2, len + add + 1), max + 1);
                        char *g = realloc(out, want);

                        if (!g) {
                                free(out);
                                return NULL;
                        }
                        out = g;
                        alloc = want;
                }
                memcpy(out + len, src, add);
                len += add;
                i += n > 0 ? n : 1;
        }
        out[len] = 0;
        return out;
}

int run_sink_reply(Session *s) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        RunSink *rs = s->run;
        bool truncated[2];
        int r;

        r = sd_bus_message_new_method_return(rs->call, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "ii", s->exit_code, s->exit_signal);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < 2; i++) {
                truncated[i] = s->out_bytes[i] > rs->out[i].size;
                if (rs->text) {
                        _cleanup_free_ char *t = NULL;
                        bool cut;

                        /* A replacement is 3 bytes for 1: the text keeps to what the bytes may. */
                        t = utf8_sanitize(rs->out[i].data, rs->out[i].size,
                                          (size_t) MIN(rs->keep_max / 2, (uint64_t) s->max_output), &cut);
                        if (!t)
                                return -ENOMEM;
                        truncated[i] = truncated[i] || cut;
                        r = sd_bus_message_append_basic(reply, 's', t);
                } else
                        r = sd_bus_message_append_array(reply, 'y', rs->out[i].data ?: (void *) "",
                                                        rs->out[i].size);
                if (r < 0)
                        return r;
        }
        r = session_append_info(reply, s, truncated);
        if (r < 0)
                return r;
        return sd_bus_send(sd_bus_message_get_bus(rs->call), reply, NULL);
}
