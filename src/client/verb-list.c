/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sandboxctl list: the sessions the caller may see, in aligned columns or as JSON. */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "sandboxctl.h"

typedef struct Row {
        uint32_t id;
        uint32_t pid;
        const char *user;       /* borrowed from the reply */
        const char **argv;      /* owned array of strings borrowed from the reply */
        size_t argc;
        char *command;          /* owned */
} Row;

typedef struct Table {
        Row *rows;
        size_t n;
} Table;

static void table_done(Table *t) {
        for (size_t i = 0; i < t->n; i++) {
                free(t->rows[i].command);
                free(t->rows[i].argv);
        }
        free(t->rows);
}

static int row_compare(const void *a, const void *b) {
        const Row *x = a, *y = b;

        return x->id < y->id ? -1 : x->id > y->id;
}

/* Reads one (uusas); returns 0 at the end of the array. */
static int read_row(sd_bus_message *reply, Row *row) {
        const char *arg;
        int r;

        r = sd_bus_message_enter_container(reply, 'r', "uusas");
        if (r <= 0)
                return r;
        r = sd_bus_message_read(reply, "uus", &row->id, &row->pid, &row->user);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "s");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(reply, "s", &arg)) > 0) {
                const char **argv = realloc(row->argv, (row->argc + 1) * sizeof(char *));

                if (!argv)
                        return -ENOMEM;
                row->argv = argv;
                row->argv[row->argc++] = arg;
                row->command = shell_quote_append(row->command, arg);
                if (!row->command)
                        return -ENOMEM;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                return r;
        return 1;
}

static int read_table(sd_bus_message *reply, Table *t) {
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "(uusas)");
        if (r < 0)
                return r;
        for (;;) {
                Row *rows = realloc(t->rows, (t->n + 1) * sizeof(Row));

                if (!rows)
                        return -ENOMEM;
                t->rows = rows;
                t->rows[t->n] = (Row) {};
                r = read_row(reply, &t->rows[t->n]);
                if (r < 0) {
                        free(t->rows[t->n].command);
                        free(t->rows[t->n].argv);
                        return r;
                }
                if (r == 0) {
                        free(t->rows[t->n].argv);
                        break;
                }
                t->n++;
        }
        return sd_bus_message_exit_container(reply);
}

/* The members are named as the session object's properties (see status --json). */
static void print_json(const Table *t, JsonMode mode) {
        JsonWriter w = { .f = stdout, .pretty = mode == JSON_PRETTY };

        json_begin(&w, '[');
        for (size_t i = 0; i < t->n; i++) {
                const Row *row = &t->rows[i];

                json_key(&w, NULL);
                json_begin(&w, '{');
                json_key(&w, "Id");
                fprintf(stdout, "%" PRIu32, row->id);
                json_key(&w, "PID");
                fprintf(stdout, "%" PRIu32, row->pid);
                json_key(&w, "User");
                json_string(stdout, row->user);
                json_key(&w, "Argv");
                json_begin(&w, '[');
                for (size_t j = 0; j < row->argc; j++) {
                        json_key(&w, NULL);
                        json_string(stdout, row->argv[j]);
                }
                json_end(&w, ']');
                json_end(&w, '}');
        }
        json_end(&w, ']');
        fputc('\n', stdout);
}

static void print_table(const Table *t, bool legend) {
        int id_width = 2, pid_width = 3, user_width = 4;

        for (size_t i = 0; i < t->n; i++) {
                char buf[16];

                id_width = MAX(id_width, snprintf(buf, sizeof buf, "%" PRIu32, t->rows[i].id));
                pid_width = MAX(pid_width, snprintf(buf, sizeof buf, "%" PRIu32, t->rows[i].pid));
                user_width = MAX(user_width, (int) strlen(t->rows[i].user));
        }

        if (legend)
                printf("%*s %*s %-*s %s\n", id_width, "ID", pid_width, "PID", user_width, "USER", "COMMAND");
        for (size_t i = 0; i < t->n; i++)
                printf("%*" PRIu32 " %*" PRIu32 " %-*s %s\n",
                       id_width, t->rows[i].id, pid_width, t->rows[i].pid,
                       user_width, t->rows[i].user, t->rows[i].command ?: "");
}

int verb_list(Context *ctx, int argc, char *argv[]) {
        enum { ARG_JSON = 0x100, ARG_NO_LEGEND };
        static const struct option options[] = {
                { "help",      no_argument,       NULL, 'h' },
                { "json",      optional_argument, NULL, ARG_JSON },
                { "no-legend", no_argument,       NULL, ARG_NO_LEGEND },
                { "quiet",     no_argument,       NULL, 'q' },
                {}
        };
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(table_done) Table t = {};
        JsonMode json = JSON_OFF;
        bool legend = true;
        int c, r;

        while ((c = getopt_long(argc, argv, "+:hq", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        print_help();
                        return 0;
                case 'q': /* as systemctl's list verbs: the table without its header */
                case ARG_NO_LEGEND:
                        legend = false;
                        break;
                case ARG_JSON:
                        r = json_mode_from_arg(optarg, &json);
                        if (r != 0)
                                return r;
                        break;
                default:
                        return log_getopt_error(c, argv);
                }
        if (optind < argc)
                return log_usage_error("list takes no arguments");

        if (context_connect(ctx) < 0)
                return EXIT_FAILED;

        r = sd_bus_call_method(ctx->bus, ctx->destination, SANDBOX_OBJECT_PATH, SANDBOX_INTERFACE, "ListSessions",
                               &error, &reply, "");
        if (r < 0) {
                if (context_explain_wrong_address(ctx, &error))
                        return EXIT_FAILED;
                return log_bus_error(&error, false, "failed to list sessions");
        }

        r = read_table(reply, &t);
        if (r < 0) {
                log_error_errno(r, "failed to parse the list of sessions: %m");
                return EXIT_FAILED;
        }
        if (t.n > 0)
                qsort(t.rows, t.n, sizeof(Row), row_compare);

        if (json != JSON_OFF)
                print_json(&t, json);
        else
                print_table(&t, legend);

        if (fflush(stdout) != 0) {
                log_error_errno(-errno, "failed to write the list: %m");
                return EXIT_FAILED;
        }
        return 0;
}
