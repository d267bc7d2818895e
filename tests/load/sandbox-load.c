/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sandbox-load: many clients running sessions back to back, every output byte and exit checked. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "sandbox-api.h"

#include "macro.h"


#define STDIN_CHUNK_MAX (64 * 1024)
#define FAILURES_SHOWN 30

typedef enum Kind {
        KIND_PRINTF,    /* sh -c 'printf OUT; printf ERR >&2; exit CODE' */
        KIND_CAT,       /* cat, fed stdin over WriteStdin, then CloseStdin */
        KIND_PATTERN,   /* yes PATTERN | head -c K */
        KIND_SIGNAL,    /* printf OUT, then the shell kills itself */
        KIND_ENV_CWD,   /* pwd, then a variable from the 'env' option */
        KIND_TIMEOUT,   /* sleep, ended by timeout-usec with SIGKILL */
        KIND_STTY,      /* stty size on a PTY of the chosen rows and cols */
        KIND_KILL,      /* prints a mark, then sleeps until the client calls Signal */
        KIND_RESIZE,    /* prints a mark, then waits for the SIGWINCH of the client's Resize */
        _KIND_MAX,
} Kind;

static const char *const kind_names[_KIND_MAX] = {
        "printf", "cat", "pattern", "signal", "env-cwd", "timeout", "stty", "kill", "resize",
};

/* What a stream must carry: 'len' bytes of 'unit' repeated (a unit as long as len: said once). */
typedef struct Expect {
        uint8_t *unit;
        size_t unit_len;
        size_t len;
        size_t got;
        bool bad;
} Expect;

typedef struct Client Client;

typedef struct Job {
        Client *client;
        struct Job *next;
        Kind kind;
        uint64_t serial;
        uint32_t id;
        bool started;
        bool abandoned;                 /* its connection was dropped on purpose (--disconnect) */
        bool tty;
        char **argv;
        Expect out[2];                  /* stream 1 and 2 */
        int code, signal;               /* the Exited we expect */
        uint8_t *input;                 /* for cat */
        size_t input_len;
        uint64_t window;
        uint64_t unacked;               /* received, not yet acknowledged */
        bool ack_batched;
        uint64_t t_call, t_reply;       /* CLOCK_MONOTONIC usec */
        /* kill and resize: what to call once the command's mark arrives (it is then ready). */
        bool triggered;
        int send_signal;
        unsigned rows, cols, new_rows, new_cols;
        char options[160];              /* a summary for failure messages */
} Job;

typedef struct Load Load;

struct Client {
        Load *load;
        unsigned index;
        sd_bus *bus;
        uint64_t rng;
        Job *jobs;
        unsigned in_flight;
        uint64_t started, finished;
        sd_event_source *drop;          /* a pending --disconnect */
};

struct Load {
        sd_event *event;
        const char *address;
        bool use_bus;
        bool trace;                     /* $SANDBOX_LOAD_TRACE: log every Output */
        unsigned n_clients, in_flight, execs;
        double seconds, grace;
        unsigned disconnect_percent;
        uint64_t disconnects, abandoned;
        Job *graveyard;                 /* jobs of dropped connections, freed at the end */
        uint64_t seed;
        Client *clients;
        bool stopping;
        uint64_t t_start, t_stop;
        /* results */
        uint64_t sessions, failures, stray_signals, bytes_out, bytes_in;
        uint64_t per_kind[_KIND_MAX], per_kind_failed[_KIND_MAX];
        double *exec_latency, *session_latency;
        double slowest_ms;
        char slowest[1024];
        size_t n_latency, latency_allocated;
};

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* xorshift64*: the same seed gives every client the same sequence of sessions. */
static uint64_t rnd(Client *c) {
        c->rng ^= c->rng >> 12;
        c->rng ^= c->rng << 25;
        c->rng ^= c->rng >> 27;
        return c->rng * UINT64_C(2685821657736338717);
}

static unsigned rnd_below(Client *c, unsigned n) {
        return (unsigned) (rnd(c) % n);
}

static bool chance(Client *c, unsigned percent) {
        return rnd_below(c, 100) < percent;
}

/* A random string for argv or env: printable ASCII, with newlines when allowed. */
static char *random_text(Client *c, size_t len, bool newlines) {
        char *s = malloc(len + 1);

        if (!s)
                abort();
        for (size_t i = 0; i < len; i++) {
                unsigned v = rnd_below(c, 96);

                s[i] = v == 95 ? (newlines ? '\n' : '~') : (char) (' ' + v);
        }
        s[len] = 0;
        return s;
}

static void expect_set(Expect *e, const void *unit, size_t unit_len, size_t len) {
        free(e->unit);
        e->unit = malloc(unit_len ? unit_len : 1);
        if (!e->unit)
                abort();
        memcpy(e->unit, unit, unit_len);
        e->unit_len = unit_len;
        e->len = len;
}

/* A PTY turns \n into \r\n (ONLCR). */
static char *onlcr(const char *s) {
        size_t n = 0;
        char *t, *p;

        for (const char *q = s; *q; q++)
                n += *q == '\n' ? 2 : 1;
        t = p = malloc(n + 1);
        if (!t)
                abort();
        for (const char *q = s; *q; q++) {
                if (*q == '\n')
                        *p++ = '\r';
                *p++ = *q;
        }
        *p = 0;
        return t;
}

static void expect_text(Expect *e, const char *s, bool tty) {
        char *t = tty ? onlcr(s) : strdup(s);

        if (!t)
                abort();
        expect_set(e, t, strlen(t), strlen(t));
        free(t);
}

static char **argv_new(unsigned n, ...) {
        char **a = calloc(n + 1, sizeof(char *));
        va_list ap;

        if (!a)
                abort();
        va_start(ap, n);
        for (unsigned i = 0; i < n; i++) {
                a[i] = strdup(va_arg(ap, const char *));
                if (!a[i])
                        abort();
        }
        va_end(ap);
        return a;
}

static void job_free(Job *j) {
        if (!j)
                return;
        for (char **a = j->argv; a && *a; a++)
                free(*a);
        free(j->argv);
        free(j->out[0].unit);
        free(j->out[1].unit);
        free(j->input);
        free(j);
}

static void job_note(Job *j, const char *fmt, ...) _printf_(2, 3);

/* Appends to the summary of options that failure messages show. */
static void job_note(Job *j, const char *fmt, ...) {
        size_t k = strlen(j->options);
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(j->options + k, sizeof(j->options) - k, fmt, ap);
        va_end(ap);
}

static void job_describe(const Job *j, char *buf, size_t size) {
        size_t k = 0;

        k += (size_t) snprintf(buf + k, size - k, "client %u session %" PRIu32 " [%s%s%s] argv:",
                               j->client->index, j->id, kind_names[j->kind], j->tty ? " tty" : "",
                               j->options);
        for (char **a = j->argv; a && *a && k < size; a++)
                k += (size_t) snprintf(buf + k, size - k, " '%.40s%s'", *a, strlen(*a) > 40 ? "..." : "");
}

static void failure(Job *j, const char *fmt, ...) _printf_(2, 3);

static void failure(Job *j, const char *fmt, ...) {
        Load *l = j->client->load;
        char what[512], who[1024];
        va_list ap;

        l->failures++;
        if (l->failures > FAILURES_SHOWN) {
                if (l->failures == FAILURES_SHOWN + 1)
                        fprintf(stderr, "(further failures are counted, not shown)\n");
                return;
        }
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        job_describe(j, who, sizeof(who));
        fprintf(stderr, "FAIL %s: %s\n", who, what);
}

static void escape_bytes(const uint8_t *p, size_t n, char *buf, size_t size) {
        size_t k = 0;

        for (size_t i = 0; i < n && k + 5 < size; i++) {
                if (p[i] >= ' ' && p[i] < 0x7f && p[i] != '\\')
                        buf[k++] = (char) p[i];
                else
                        k += (size_t) snprintf(buf + k, size - k, "\\x%02x", p[i]);
        }
        buf[k] = 0;
}

static void expected_bytes(const Expect *e, size_t from, size_t n, uint8_t *out) {
        for (size_t i = 0; i < n; i++)
                out[i] = e->unit[(from + i) % e->unit_len];
}

static void check_output(Job *j, unsigned stream, const uint8_t *data, size_t size) {
        Expect *e = &j->out[stream - 1];
        size_t i;

        j->client->load->bytes_out += size;
        if (e->bad) {
                e->got += size;
                return;
        }
        for (i = 0; i < size; i++) {
                size_t at = e->got + i;

                if (at >= e->len || data[i] != e->unit[at % e->unit_len])
                        break;
        }
        if (i < size) {
                size_t at = e->got + i, n = MIN(size - i, (size_t) 24);
                uint8_t want[24];
                char got_s[128], want_s[128];

                expected_bytes(e, at, at < e->len ? MIN(n, e->len - at) : 0, want);
                escape_bytes(data + i, n, got_s, sizeof(got_s));
                escape_bytes(want, at < e->len ? MIN(n, e->len - at) : 0, want_s, sizeof(want_s));
                failure(j, "stream %u at byte %zu (of %zu expected): expected \"%s\"%s, got \"%s\"", stream,
                        at, e->len, want_s, at >= e->len ? " (end of output)" : "", got_s);
                e->bad = true;
        }
        e->got += size;
}

static void latency_add(Load *l, double exec_ms, double session_ms) {
        if (l->n_latency == l->latency_allocated) {
                size_t n = l->latency_allocated ? l->latency_allocated * 2 : 4096;

                l->exec_latency = realloc(l->exec_latency, n * sizeof(double));
                l->session_latency = realloc(l->session_latency, n * sizeof(double));
                if (!l->exec_latency || !l->session_latency)
                        abort();
                l->latency_allocated = n;
        }
        l->exec_latency[l->n_latency] = exec_ms;
        l->session_latency[l->n_latency] = session_ms;
        l->n_latency++;
}

static void job_unlink(Job *j) {
        Client *c = j->client;

        for (Job **p = &c->jobs; *p; p = &(*p)->next)
                if (*p == j) {
                        *p = j->next;
                        break;
                }
        c->in_flight--;
        c->finished++;
}

static int client_fill(Client *c);
static int client_connect(Client *c);

/* Drops the connection with sessions running, as a crashing client would, and opens a new one.
 * Runs from the event loop, outside any callback of the bus it closes. */
static int on_drop(sd_event_source *s, void *userdata) {
        Client *c = userdata;
        Load *l = c->load;
        int r;

        c->drop = sd_event_source_disable_unref(c->drop);
        while (c->jobs) {
                Job *j = c->jobs;

                c->jobs = j->next;
                j->abandoned = true;
                j->next = l->graveyard;
                l->graveyard = j;
                l->abandoned++;
        }
        c->in_flight = 0;
        /* Closed without a flush: the daemon sees the socket go away. Pending replies are
         * dropped with the bus, so no callback sees an abandoned job. */
        sd_bus_close(c->bus);
        c->bus = sd_bus_unref(c->bus);
        l->disconnects++;

        r = client_connect(c);
        if (r < 0) {
                l->failures++;
                fprintf(stderr, "FAIL client %u: cannot connect again after dropping its connection: %s\n",
                        c->index, strerror(-r));
                c->started = UINT64_MAX; /* no more sessions for it */
        }
        (void) client_fill(c);
        return 0;
}

static void job_finish(Job *j, bool ok) {
        Client *c = j->client;
        Load *l = c->load;

        l->sessions++;
        l->per_kind[j->kind]++;
        if (!ok)
                l->per_kind_failed[j->kind]++;
        job_unlink(j);
        job_free(j);
        if (l->disconnect_percent > 0 && !l->stopping && !c->drop && c->in_flight > 0 &&
            chance(c, l->disconnect_percent) &&
            sd_event_add_defer(l->event, &c->drop, on_drop, c) >= 0)
                return;
        (void) client_fill(c);
}

static Job *client_find_job(Client *c, uint32_t id) {
        for (Job *j = c->jobs; j; j = j->next)
                if (j->started && j->id == id)
                        return j;
        return NULL;
}

static int new_call(Client *c, const char *member, sd_bus_message **ret) {
        return sd_bus_message_new_method_call(c->bus, ret, c->load->use_bus ? SANDBOX_BUS_NAME : NULL,
                                              SANDBOX_OBJECT_PATH, SANDBOX_INTERFACE, member);
}

static int call_async(Client *c, sd_bus_message_handler_t cb, void *userdata, const char *member,
                      const char *types, ...) {
        sd_bus_message *m = NULL;
        va_list ap;
        int r;

        r = new_call(c, member, &m);
        if (r < 0)
                return r;
        va_start(ap, types);
        r = sd_bus_message_appendv(m, types, ap);
        va_end(ap);
        if (r >= 0)
                r = sd_bus_call_async(c->bus, NULL, m, cb, userdata, 0);
        sd_bus_message_unref(m);
        return r;
}

/* Replies to WriteStdin, CloseStdin and Ack: only errors matter. Acks may race with the
 * session's end, so NoSuchSession is expected for them. */
static int on_plain_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Client *c = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        if (!e)
                return 0;
        if (sd_bus_error_has_name(e, "org.example.Sandbox1.Error.NoSuchSession"))
                return 0;
        c->load->failures++;
        fprintf(stderr, "FAIL client %u: call failed: %s: %s\n", c->index, e->name, strempty(e->message));
        return 0;
}

static int job_feed_stdin(Job *j) {
        Client *c = j->client;
        size_t off = 0;
        int r;

        /* All queued at once: the daemon keeps the order, and its backpressure is what is tested. */
        while (off < j->input_len) {
                size_t chunk = 1 + rnd_below(c, STDIN_CHUNK_MAX), n = MIN(j->input_len - off, chunk);
                sd_bus_message *m = NULL;

                r = new_call(c, "WriteStdin", &m);
                if (r >= 0)
                        r = sd_bus_message_append(m, "u", j->id);
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'y', j->input + off, n);
                if (r >= 0)
                        r = sd_bus_call_async(c->bus, NULL, m, on_plain_reply, c, 0);
                sd_bus_message_unref(m);
                if (r < 0)
                        return r;
                if (c->load->trace)
                        fprintf(stderr, "trace: client %u session %" PRIu32 " WriteStdin %zu bytes at %zu\n",
                                c->index, j->id, n, off);
                off += n;
                c->load->bytes_in += n;
        }
        return call_async(c, on_plain_reply, c, "CloseStdin", "u", j->id);
}

static int on_exec_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Job *j = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        uint32_t pid;
        int r;

        j->t_reply = now_usec();
        if (e) {
                failure(j, "Exec failed: %s: %s", e->name, strempty(e->message));
                job_finish(j, false);
                return 0;
        }
        r = sd_bus_message_read(reply, "uu", &j->id, &pid);
        if (r < 0) {
                failure(j, "cannot read the Exec reply: %s", strerror(-r));
                job_finish(j, false);
                return 0;
        }
        if (client_find_job(j->client, j->id)) {
                failure(j, "Exec returned id %" PRIu32 ", which a running session of this client has",
                        j->id);
                job_finish(j, false);
                return 0;
        }
        j->started = true;
        if (j->kind == KIND_CAT) {
                r = job_feed_stdin(j);
                if (r < 0) {
                        failure(j, "cannot send stdin: %s", strerror(-r));
                        /* Left to the session timeout check at the end. */
                }
        }
        return 0;
}

static void job_ack(Job *j, size_t size, bool flush) {
        int r;

        if (j->window == 0)
                return;
        j->unacked += size;
        if (j->unacked == 0 || (j->ack_batched && !flush && j->unacked < j->window / 2))
                return;
        r = call_async(j->client, on_plain_reply, j->client, "Ack", "ut", j->id, j->unacked);
        if (r < 0)
                failure(j, "cannot send Ack: %s", strerror(-r));
        j->unacked = 0;
}

static void on_exited(Job *j, int32_t code, int32_t sig) {
        Load *l = j->client->load;
        bool ok = !j->out[0].bad && !j->out[1].bad;
        uint64_t t = now_usec();

        for (unsigned s = 0; s < 2; s++)
                if (!j->out[s].bad && j->out[s].got != j->out[s].len) {
                        uint8_t want[24];
                        char want_s[128];
                        size_t n = MIN(j->out[s].len - j->out[s].got, sizeof(want));

                        expected_bytes(&j->out[s], j->out[s].got, n, want);
                        escape_bytes(want, n, want_s, sizeof(want_s));
                        failure(j, "Exited after %zu of %zu bytes on stream %u; missing: \"%s\"...",
                                j->out[s].got, j->out[s].len, s + 1, want_s);
                        ok = false;
                }
        if (code != j->code || sig != j->signal) {
                failure(j, "expected Exited(code %d, signal %d), got Exited(code %" PRIi32 ", signal %"
                        PRIi32 ")", j->code, j->signal, code, sig);
                ok = false;
        }
        latency_add(l, (double) (j->t_reply - j->t_call) / 1000.0, (double) (t - j->t_call) / 1000.0);
        if ((double) (t - j->t_call) / 1000.0 > l->slowest_ms) {
                l->slowest_ms = (double) (t - j->t_call) / 1000.0;
                job_describe(j, l->slowest, sizeof(l->slowest));
        }
        job_finish(j, ok);
}

static void job_trigger(Job *j) {
        int r;

        j->triggered = true;
        if (j->kind == KIND_KILL)
                r = call_async(j->client, on_plain_reply, j->client, "Signal", "ui", j->id, j->send_signal);
        else
                r = call_async(j->client, on_plain_reply, j->client, "Resize", "uqq", j->id,
                               (uint16_t) j->new_rows, (uint16_t) j->new_cols);
        if (r < 0)
                failure(j, "cannot call %s: %s", j->kind == KIND_KILL ? "Signal" : "Resize", strerror(-r));
}

static int on_message(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Client *c = userdata;
        bool output = sd_bus_message_is_signal(m, SANDBOX_INTERFACE, "Output");
        bool exited = sd_bus_message_is_signal(m, SANDBOX_INTERFACE, "Exited");
        uint32_t id;
        Job *j;
        int r;

        if (!output && !exited)
                return 0;
        r = sd_bus_message_read(m, "u", &id);
        if (r < 0)
                return 0;
        j = client_find_job(c, id);
        if (!j) {
                c->load->stray_signals++;
                fprintf(stderr, "FAIL client %u: %s for session %" PRIu32 ", which it has not running\n",
                        c->index, output ? "Output" : "Exited", id);
                return 0;
        }
        if (output) {
                const void *data;
                uint32_t stream;
                size_t size;

                r = sd_bus_message_read(m, "u", &stream);
                if (r >= 0)
                        r = sd_bus_message_read_array(m, 'y', &data, &size);
                if (r < 0 || stream < 1 || stream > 2) {
                        failure(j, "malformed Output (stream %" PRIu32 ")", stream);
                        return 0;
                }
                if (c->load->trace)
                        fprintf(stderr, "trace: client %u session %" PRIu32 " Output stream %" PRIu32
                                " %zu bytes at %zu\n", c->index, id, stream, size, j->out[stream - 1].got);
                check_output(j, stream, data, size);
                job_ack(j, size, false);
                if (!j->triggered && (j->kind == KIND_KILL || j->kind == KIND_RESIZE))
                        job_trigger(j);
        } else {
                int32_t code, sig;

                r = sd_bus_message_read(m, "ii", &code, &sig);
                if (r < 0) {
                        failure(j, "malformed Exited");
                        job_finish(j, false);
                        return 0;
                }
                on_exited(j, code, sig);
        }
        return 0;
}

/* Chooses the next session: its command, options and exactly what it must produce. */
static Job *job_new(Client *c) {
        static const char *const signals[] = { "TERM", "KILL", "USR1", "ALRM" };
        static const int signal_numbers[] = { 15, 9, 10, 14 };
        Job *j = calloc(1, sizeof(Job));
        size_t len;
        char *s, *t, num[32];

        if (!j)
                abort();
        j->client = c;
        j->kind = (Kind) rnd_below(c, _KIND_MAX);
        if (j->kind == KIND_TIMEOUT && !chance(c, 20))
                j->kind = KIND_PRINTF; /* each takes a while: keep them rare */
        /* cat echoes on a PTY, so it stays on pipes; stty needs one. */
        j->tty = j->kind == KIND_STTY || j->kind == KIND_RESIZE || (j->kind != KIND_CAT && chance(c, 40));

        switch (j->kind) {
        case KIND_PRINTF: {
                char code[16];

                s = random_text(c, rnd_below(c, 4) == 0 ? rnd_below(c, 8192) : rnd_below(c, 200), true);
                t = random_text(c, rnd_below(c, 100), true);
                j->code = (int) rnd_below(c, 256);
                snprintf(code, sizeof(code), "%d", j->code);
                j->argv = argv_new(7, "sh", "-c", "printf '%s' \"$1\"; printf '%s' \"$2\" >&2; exit $3",
                                   "sh", s, t, code);
                if (j->tty) {
                        char *both;

                        if (asprintf(&both, "%s%s", s, t) < 0)
                                abort();
                        expect_text(&j->out[0], both, true);
                        free(both);
                        expect_text(&j->out[1], "", false);
                } else {
                        expect_text(&j->out[0], s, false);
                        expect_text(&j->out[1], t, false);
                }
                free(s);
                free(t);
                break;
        }
        case KIND_CAT:
                len = chance(c, 10) ? rnd_below(c, 1024 * 1024) : rnd_below(c, 64 * 1024);
                j->input = malloc(len ? len : 1);
                if (!j->input)
                        abort();
                for (size_t i = 0; i < len; i++)
                        j->input[i] = (uint8_t) rnd(c);
                j->input_len = len;
                j->argv = argv_new(1, "cat");
                expect_set(&j->out[0], j->input, len, len);
                expect_text(&j->out[1], "", false);
                break;
        case KIND_PATTERN: {
                size_t plen = 1 + rnd_below(c, 30), k = chance(c, 15) ? rnd_below(c, 2 * 1024 * 1024)
                                                                      : rnd_below(c, 100 * 1024);
                char *unit;

                s = random_text(c, plen, false);
                if (s[0] == '-')
                        s[0] = '+'; /* not an option of yes */
                snprintf(num, sizeof(num), "%zu", k);
                j->argv = argv_new(6, "sh", "-c", "yes \"$1\" | head -c $2", "sh", s, num);
                if (asprintf(&unit, "%s%s", s, j->tty ? "\r\n" : "\n") < 0)
                        abort();
                /* head cuts after k bytes of PATTERN\n units; the PTY adds one \r per whole unit. */
                expect_set(&j->out[0], unit, strlen(unit),
                           j->tty ? k / (plen + 1) * (plen + 2) + k % (plen + 1) : k);
                expect_text(&j->out[1], "", false);
                free(unit);
                free(s);
                break;
        }
        case KIND_SIGNAL: {
                unsigned i = rnd_below(c, ELEMENTSOF(signals));
                char *script;

                s = random_text(c, rnd_below(c, 100), true);
                if (asprintf(&script, "printf '%%s' \"$1\"; kill -%s $$; sleep 10", signals[i]) < 0)
                        abort();
                j->argv = argv_new(5, "sh", "-c", script, "sh", s);
                free(script);
                j->code = -1;
                j->signal = signal_numbers[i];
                expect_text(&j->out[0], s, j->tty);
                expect_text(&j->out[1], "", false);
                free(s);
                break;
        }
        case KIND_ENV_CWD: {
                char *want;

                s = random_text(c, rnd_below(c, 300), false);
                j->argv = argv_new(3, "sh", "-c", "pwd; printf '%s' \"$LOAD_VALUE\"");
                /* s goes in the env option (job_start), cwd is / or /tmp */
                j->input = (uint8_t *) s;
                j->code = chance(c, 50); /* 1: /tmp, 0: / (reused as the choice, exit is 0) */
                if (asprintf(&want, "%s\n%s", j->code ? "/tmp" : "/", s) < 0)
                        abort();
                expect_text(&j->out[0], want, j->tty);
                expect_text(&j->out[1], "", false);
                free(want);
                break;
        }
        case KIND_TIMEOUT:
                j->argv = argv_new(2, "sleep", "30");
                j->code = -1;
                j->signal = 9;
                expect_text(&j->out[0], "", false);
                expect_text(&j->out[1], "", false);
                break;
        case KIND_STTY:
                j->argv = argv_new(2, "stty", "size");
                break;
        case KIND_KILL: {
                /* Delivered to the process group: sleep must die of it too, whatever the daemon's
                 * own signal dispositions were. */
                static const int kill_signals[] = { 1, 2, 3, 9, 10, 12, 14, 15 };

                j->send_signal = kill_signals[rnd_below(c, ELEMENTSOF(kill_signals))];
                j->argv = argv_new(3, "sh", "-c", "printf R; exec sleep 60");
                j->code = -1;
                j->signal = j->send_signal;
                expect_text(&j->out[0], "R", j->tty);
                expect_text(&j->out[1], "", false);
                break;
        }
        case KIND_RESIZE:
                /* The mark comes after the trap is set; the new size differs, so SIGWINCH is sent. */
                j->argv = argv_new(3, "sh", "-c",
                                   "trap 'stty size; exit 7' WINCH; printf R; while :; do sleep 0.01; done");
                j->code = 7;
                break;
        default:
                abort();
        }
        return j;
}

static int job_start(Job *j) {
        Client *c = j->client;
        sd_bus_message *m = NULL;
        unsigned rows = 0, cols = 0, n_env;
        bool tmp = false;
        int r;

        j->t_call = now_usec();
        r = new_call(c, "Exec", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append_strv(m, j->argv);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");

        if (r >= 0 && j->tty)
                r = sd_bus_message_append(m, "{sv}", "tty", "b", 1);
        if (r >= 0 && j->tty && (j->kind == KIND_STTY || j->kind == KIND_RESIZE || chance(c, 30))) {
                rows = 1 + rnd_below(c, 200);
                cols = 1 + rnd_below(c, 400);
                r = sd_bus_message_append(m, "{sv}{sv}", "rows", "q", (uint16_t) rows, "cols", "q",
                                          (uint16_t) cols);
                job_note(j, " %ux%u", rows, cols);
        }
        if (j->kind == KIND_STTY) {
                char want[64];

                snprintf(want, sizeof(want), "%u %u\n", rows, cols);
                expect_text(&j->out[0], want, true);
                expect_text(&j->out[1], "", false);
        }
        if (j->kind == KIND_RESIZE) {
                char want[64];

                j->new_rows = rows + 1 + rnd_below(c, 100);
                j->new_cols = cols + 1 + rnd_below(c, 100);
                snprintf(want, sizeof(want), "R%u %u\n", j->new_rows, j->new_cols);
                expect_text(&j->out[0], want, true);
                expect_text(&j->out[1], "", false);
                job_note(j, " resize to %ux%u", j->new_rows, j->new_cols);
        }
        if (j->kind == KIND_KILL)
                job_note(j, " Signal(%d)", j->send_signal);

        /* A few unrelated variables, and the one env-cwd checks. */
        n_env = rnd_below(c, 4);
        if (r >= 0 && (n_env > 0 || j->kind == KIND_ENV_CWD)) {
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", "env");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', "as");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'a', "s");
                for (unsigned i = 0; r >= 0 && i < n_env; i++) {
                        char *v = random_text(c, rnd_below(c, 50), false), *e;

                        if (asprintf(&e, "LOAD_%u=%s", i, v) < 0)
                                abort();
                        r = sd_bus_message_append(m, "s", e);
                        free(e);
                        free(v);
                }
                if (r >= 0 && j->kind == KIND_ENV_CWD) {
                        char *e;

                        if (asprintf(&e, "LOAD_VALUE=%s", (char *) j->input) < 0)
                                abort();
                        r = sd_bus_message_append(m, "s", e);
                        free(e);
                }
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                job_note(j, " env+%u", n_env);
        }

        tmp = j->kind == KIND_ENV_CWD ? j->code == 1 : chance(c, 50);
        if (j->kind == KIND_ENV_CWD)
                j->code = 0;
        if (r >= 0) {
                r = sd_bus_message_append(m, "{sv}", "cwd", "s", tmp ? "/tmp" : "/");
                job_note(j, " cwd=%s", tmp ? "/tmp" : "/");
        }

        if (r >= 0 && j->kind == KIND_TIMEOUT) {
                uint64_t t = 50000 + rnd_below(c, 200000);

                r = sd_bus_message_append(m, "{sv}", "timeout-usec", "t", t);
                job_note(j, " timeout=%" PRIu64 "us", t);
        } else if (r >= 0 && chance(c, 15)) {
                /* Long enough never to fire. */
                r = sd_bus_message_append(m, "{sv}", "timeout-usec", "t", (uint64_t) 120 * 1000000);
                job_note(j, " timeout=120s");
        }

        if (r >= 0 && chance(c, 25)) {
                /* Small windows, but no more than ~1000 Ack round trips per session. */
                j->window = chance(c, 50) ? 1 + rnd_below(c, 8192) : 65536;
                j->window = MAX(j->window, (uint64_t) (j->out[0].len + j->out[1].len) / 1000);
                j->ack_batched = chance(c, 50);
                r = sd_bus_message_append(m, "{sv}", "output-window", "t", j->window);
                job_note(j, " window=%" PRIu64 "%s", j->window, j->ack_batched ? " batched-acks" : "");
        }

        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_call_async(c->bus, NULL, m, on_exec_reply, j, 0);
        sd_bus_message_unref(m);
        return r;
}

/* Keeps the client's sessions in flight at the chosen number while there is time and budget. */
static int client_fill(Client *c) {
        Load *l = c->load;
        int r;

        while (!l->stopping && c->bus && c->started != UINT64_MAX && c->in_flight < l->in_flight &&
               (l->execs == 0 || c->started < l->execs)) {
                Job *j = job_new(c);

                j->serial = c->started++;
                j->next = c->jobs;
                c->jobs = j;
                c->in_flight++;
                r = job_start(j);
                if (r < 0) {
                        failure(j, "cannot send Exec: %s", strerror(-r));
                        job_unlink(j);
                        job_free(j);
                        l->sessions++;
                        return r;
                }
        }
        if (l->stopping || (l->execs > 0 && c->started >= l->execs)) {
                bool all_idle = true;

                for (unsigned i = 0; i < l->n_clients; i++)
                        if (l->clients[i].in_flight > 0 || l->clients[i].drop ||
                            (!l->stopping && l->clients[i].started != UINT64_MAX &&
                             (l->execs == 0 || l->clients[i].started < l->execs)))
                                all_idle = false;
                if (all_idle)
                        (void) sd_event_exit(l->event, 0);
        }
        return 0;
}

static int on_stop(sd_event_source *s, uint64_t usec, void *userdata) {
        Load *l = userdata;

        l->stopping = true;
        l->t_stop = now_usec();
        (void) client_fill(&l->clients[0]); /* exits the loop if nothing is in flight */
        return 0;
}

static int on_grace_over(sd_event_source *s, uint64_t usec, void *userdata) {
        return sd_event_exit(((Load *) userdata)->event, 0);
}

static int bus_open(Load *l, sd_bus **ret) {
        sd_bus *bus = NULL;
        int r;

        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        r = sd_bus_set_address(bus, l->address ?: getenv("DBUS_SYSTEM_BUS_ADDRESS") ?:
                               "unix:path=/run/dbus/system_bus_socket");
        /* Peer-to-peer: the daemon is the other end; no bus driver to say Hello to. */
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, l->use_bus);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                sd_bus_unref(bus);
                return r;
        }
        *ret = bus;
        return 0;
}

static int client_connect(Client *c) {
        Load *l = c->load;
        sd_bus *bus;
        int r;

        r = bus_open(l, &bus);
        if (r < 0)
                return r;
        r = sd_bus_add_filter(bus, NULL, on_message, c);
        if (r >= 0 && l->use_bus)
                /* Unicast signals arrive anyway; the match keeps a strict bus policy from dropping them. */
                r = sd_bus_match_signal_async(bus, NULL, SANDBOX_BUS_NAME, SANDBOX_OBJECT_PATH, SANDBOX_INTERFACE,
                                              NULL, NULL, NULL, NULL);
        if (r >= 0)
                r = sd_bus_attach_event(bus, l->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0) {
                sd_bus_unref(bus);
                return r;
        }
        c->bus = bus;
        return 0;
}

/* How many sessions with one of this tool's commands ListSessions still shows; -errno on failure. */
static int count_leftovers(Load *l, char *ids, size_t size) {
        static const char *const ours[] = { "sh", "cat", "sleep", "stty" };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        sd_bus *bus = NULL;
        size_t k = 0;
        int r, n = 0;

        ids[0] = 0;
        /* A connection of its own: the clients' were closed with the event loop. */
        r = bus_open(l, &bus);
        if (r >= 0)
                r = sd_bus_call_method(bus, l->use_bus ? SANDBOX_BUS_NAME : NULL, SANDBOX_OBJECT_PATH,
                               SANDBOX_INTERFACE, "ListSessions", &error, &reply, NULL);
        if (r < 0) {
                fprintf(stderr, "ListSessions failed: %s\n", error.message ?: strerror(-r));
                sd_bus_error_free(&error);
                sd_bus_unref(bus);
                return r;
        }
        r = sd_bus_message_enter_container(reply, 'a', "(uusas)");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'r', "uusas")) > 0) {
                const char *user;
                uint32_t id, pid;
                char **argv = NULL;

                r = sd_bus_message_read(reply, "uus", &id, &pid, &user);
                if (r >= 0)
                        r = sd_bus_message_read_strv(reply, &argv);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                for (size_t i = 0; r >= 0 && argv && argv[0] && i < ELEMENTSOF(ours); i++) {
                        if (!streq(argv[0], ours[i]))
                                continue;
                        n++;
                        if (k + 32 < size)
                                k += (size_t) snprintf(ids + k, size - k, " %" PRIu32 " (pid %" PRIu32
                                                       ", %s)", id, pid, argv[0]);
                        break;
                }
                for (char **a = argv; a && *a; a++)
                        free(*a);
                free(argv);
        }
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(bus);
        return r < 0 ? r : n;
}

static int compare_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

static double percentile(double *v, size_t n, double p) {
        if (n == 0)
                return 0;
        return v[MIN(n - 1, (size_t) (p * (double) n))];
}

static void print_latency(const char *what, double *v, size_t n) {
        double sum = 0;

        qsort(v, n, sizeof(double), compare_double);
        for (size_t i = 0; i < n; i++)
                sum += v[i];
        printf("  %-16s avg %7.2f ms  p50 %7.2f  p90 %7.2f  p99 %7.2f  max %7.2f\n", what,
               n ? sum / (double) n : 0, percentile(v, n, 0.5), percentile(v, n, 0.9),
               percentile(v, n, 0.99), n ? v[n - 1] : 0);
}

static void help(void) {
        printf("sandbox-load --address=ADDRESS [--bus] [--clients=N] [--execs=M] [--seconds=S] [--seed=X]\n"
               "             [--in-flight=K] [--grace=S] [--disconnect=P]\n\n"
               "Runs sessions on sandboxd from N connections, K at a time each, for S seconds or M\n"
               "sessions per client, and checks every output byte and every exit status.\n\n"
               "  --address=ADDRESS   D-Bus address; peer-to-peer unless --bus (default: the system bus)\n"
               "  --bus               ADDRESS is a bus: send Hello, call org.example.Sandbox1\n"
               "  --clients=N         connections (default 8)\n"
               "  --in-flight=K       sessions at once per connection (default 4)\n"
               "  --execs=M           sessions per connection, 0 = until --seconds (default 0)\n"
               "  --seconds=S         stop starting sessions after S seconds (default 10)\n"
               "  --grace=S           then wait at most S seconds for the rest (default 60)\n"
               "  --seed=X            random seed (default 1)\n"
               "  --disconnect=P      after P%% of sessions, drop the connection with the others running\n"
               "                      and open a new one (default 0)\n");
}

int main(int argc, char *argv[]) {
        enum { ARG_ADDRESS = 0x100, ARG_BUS, ARG_CLIENTS, ARG_EXECS, ARG_SECONDS, ARG_SEED, ARG_IN_FLIGHT,
               ARG_GRACE, ARG_DISCONNECT };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "address", required_argument, NULL, ARG_ADDRESS },
                { "bus", no_argument, NULL, ARG_BUS },
                { "clients", required_argument, NULL, ARG_CLIENTS },
                { "execs", required_argument, NULL, ARG_EXECS },
                { "seconds", required_argument, NULL, ARG_SECONDS },
                { "seed", required_argument, NULL, ARG_SEED },
                { "in-flight", required_argument, NULL, ARG_IN_FLIGHT },
                { "grace", required_argument, NULL, ARG_GRACE },
                { "disconnect", required_argument, NULL, ARG_DISCONNECT },
                {}
        };
        Load l = { .n_clients = 8, .in_flight = 4, .seconds = 10, .grace = 60, .seed = 1 };
        uint64_t t_end, unfinished = 0;
        double elapsed;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_ADDRESS:
                        l.address = optarg;
                        break;
                case ARG_BUS:
                        l.use_bus = true;
                        break;
                case ARG_CLIENTS:
                        l.n_clients = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case ARG_EXECS:
                        l.execs = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case ARG_SECONDS:
                        l.seconds = strtod(optarg, NULL);
                        break;
                case ARG_SEED:
                        l.seed = strtoull(optarg, NULL, 0);
                        break;
                case ARG_IN_FLIGHT:
                        l.in_flight = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case ARG_GRACE:
                        l.grace = strtod(optarg, NULL);
                        break;
                case ARG_DISCONNECT:
                        l.disconnect_percent = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                default:
                        return 2;
                }
        if (optind < argc || l.n_clients == 0 || l.in_flight == 0 || !(l.seconds > 0) ||
            (!l.address && !l.use_bus)) {
                fprintf(stderr, "Usage: see --help (--address is needed unless --bus).\n");
                return 2;
        }

        l.trace = !!getenv("SANDBOX_LOAD_TRACE");
        r = sd_event_default(&l.event);
        if (r < 0) {
                fprintf(stderr, "sd_event_default: %s\n", strerror(-r));
                return 1;
        }
        l.clients = calloc(l.n_clients, sizeof(Client));
        if (!l.clients)
                abort();
        for (unsigned i = 0; i < l.n_clients; i++) {
                Client *cl = &l.clients[i];

                cl->load = &l;
                cl->index = i;
                cl->rng = (l.seed ^ UINT64_C(0x9e3779b97f4a7c15)) * (i + 1) | 1;
                r = client_connect(cl);
                if (r < 0) {
                        fprintf(stderr, "Cannot connect client %u to %s: %s\n", i, strempty(l.address),
                                strerror(-r));
                        return 1;
                }
        }

        l.t_start = now_usec();
        r = sd_event_add_time_relative(l.event, NULL, CLOCK_MONOTONIC, (uint64_t) (l.seconds * 1e6), 0,
                                       on_stop, &l);
        if (r >= 0)
                r = sd_event_add_time_relative(l.event, NULL, CLOCK_MONOTONIC,
                                               (uint64_t) ((l.seconds + l.grace) * 1e6), 0, on_grace_over,
                                               &l);
        if (r < 0) {
                fprintf(stderr, "Cannot add timers: %s\n", strerror(-r));
                return 1;
        }
        for (unsigned i = 0; i < l.n_clients; i++)
                (void) client_fill(&l.clients[i]);

        r = sd_event_loop(l.event);
        t_end = now_usec();
        if (r < 0) {
                fprintf(stderr, "Event loop failed: %s\n", strerror(-r));
                return 1;
        }

        /* Whatever is still in flight after the grace period never got its Exited. */
        for (unsigned i = 0; i < l.n_clients; i++)
                for (Job *j = l.clients[i].jobs; j; j = j->next) {
                        failure(j, "%s after %.1f s (stream 1: %zu of %zu bytes, stream 2: %zu of %zu)",
                                j->started ? "no Exited" : "no reply to Exec",
                                (double) (t_end - j->t_call) / 1e6, j->out[0].got, j->out[0].len,
                                j->out[1].got, j->out[1].len);
                        unfinished++;
                }

        /* Sessions of dropped connections get SIGHUP, then SIGKILL after a grace: none may stay. */
        {
                char ids[512];
                int n = 0;

                unsigned tries;

                for (tries = 0; tries < 100; tries++) {
                        n = count_leftovers(&l, ids, sizeof(ids));
                        if (n <= 0)
                                break;
                        usleep(200 * 1000);
                }
                if (tries > 0 && n == 0)
                        fprintf(stderr, "(sessions were still listed after the run; gone after %.1f s)\n",
                                tries * 0.2);
                if (n > 0) {
                        l.failures++;
                        fprintf(stderr, "FAIL %d sessions still listed 20 s after the run:%s\n", n, ids);
                }
        }

        elapsed = (double) ((l.t_stop ?: t_end) - l.t_start) / 1e6;
        printf("sandbox-load: %u clients x %u in flight, %s%s, seed %" PRIu64 "\n", l.n_clients, l.in_flight,
               l.use_bus ? "bus " : "peer-to-peer ", strempty(l.address), l.seed);
        printf("  sessions         %" PRIu64 " finished in %.1f s (+%.1f s drain): %.1f execs/s; %" PRIu64
               " unfinished\n",
               l.sessions, elapsed, (double) (t_end - (l.t_stop ?: t_end)) / 1e6,
               (double) l.sessions / ((double) (t_end - l.t_start) / 1e6), unfinished);
        printf("  by kind         ");
        for (int k = 0; k < _KIND_MAX; k++)
                printf(" %s %" PRIu64 "%s", kind_names[k], l.per_kind[k],
                       l.per_kind_failed[k] ? " (FAILED some)" : "");
        printf("\n  bytes            %.1f MiB output checked, %.1f MiB stdin written\n",
               (double) l.bytes_out / 1048576.0, (double) l.bytes_in / 1048576.0);
        print_latency("Exec reply", l.exec_latency, l.n_latency);
        print_latency("whole session", l.session_latency, l.n_latency);
        if (l.slowest_ms > 0)
                printf("  slowest          %.0f ms: %s\n", l.slowest_ms, l.slowest);
        if (l.disconnect_percent > 0)
                printf("  disconnects      %" PRIu64 " connections dropped with %" PRIu64
                       " sessions running (not checked)\n", l.disconnects, l.abandoned);
        printf("  failures         %" PRIu64 " (plus %" PRIu64 " stray signals)\n", l.failures,
               l.stray_signals);

        for (unsigned i = 0; i < l.n_clients; i++) {
                while (l.clients[i].jobs) {
                        Job *j = l.clients[i].jobs;

                        l.clients[i].jobs = j->next;
                        job_free(j);
                }
                sd_bus_flush_close_unref(l.clients[i].bus);
                sd_event_source_disable_unref(l.clients[i].drop);
        }
        while (l.graveyard) {
                Job *j = l.graveyard;

                l.graveyard = j->next;
                job_free(j);
        }
        free(l.clients);
        free(l.exec_latency);
        free(l.session_latency);
        sd_event_unref(l.event);
        return l.failures > 0 || l.stray_signals > 0 ? 1 : 0;
}
