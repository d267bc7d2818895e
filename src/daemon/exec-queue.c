/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>

#include "bus-error.h"
#include "client.h"
#include "exec-queue.h"
#include "log.h"

struct ExecQueued {
        sd_bus_message *msg;
        ExecRequest req;
        UserInfo user;
        uint64_t size;
        ExecQueued *next;
};

/* What a waiting Exec holds: its argv and env, the parse's count, and the rest roughly. */
static uint64_t request_size(const ExecRequest *req) {
        return sizeof(ExecQueued) + 1024 + req->args_size + req->stdin_data_size;
}

static ExecQueued *queued_free(ExecQueued *q) {
        if (!q)
                return NULL;
        sd_bus_message_unref(q->msg);
        exec_request_done(&q->req);
        user_info_done(&q->user);
        free(q);
        return NULL;
}

static void turn_unlink(Manager *m, Client *c) {
        if (!c->exec_in_turn)
                return;
        if (c->exec_turn_prev)
                c->exec_turn_prev->exec_turn_next = c->exec_turn_next;
        else
                m->exec_turn_first = c->exec_turn_next;
        if (c->exec_turn_next)
                c->exec_turn_next->exec_turn_prev = c->exec_turn_prev;
        else
                m->exec_turn_last = c->exec_turn_prev;
        c->exec_turn_next = c->exec_turn_prev = NULL;
        c->exec_in_turn = false;
}

static void turn_append(Manager *m, Client *c) {
        if (c->exec_in_turn)
                return;
        c->exec_turn_prev = m->exec_turn_last;
        c->exec_turn_next = NULL;
        if (m->exec_turn_last)
                m->exec_turn_last->exec_turn_next = c;
        else
                m->exec_turn_first = c;
        m->exec_turn_last = c;
        c->exec_in_turn = true;
}

/* Takes the first Exec of the client whose turn it is; the client goes to the back of the line. */
static ExecQueued *queue_pop(Manager *m, Client **ret_client) {
        Client *c = m->exec_turn_first;
        ExecQueued *q;

        if (!c)
                return NULL;
        q = c->exec_first;
        c->exec_first = q->next;
        if (!c->exec_first)
                c->exec_last = NULL;
        c->n_exec_queued--;
        c->exec_queued_bytes -= q->size;
        m->exec_queued_bytes -= q->size;
        turn_unlink(m, c);
        if (c->exec_first)
                turn_append(m, c);
        *ret_client = c;
        return q;
}

static void reply_failure(sd_bus_message *msg, int r, sd_bus_error *error) {
        int k;

        if (sd_bus_error_is_set(error))
                k = sd_bus_reply_method_error(msg, error);
        else
                k = sd_bus_reply_method_errno(msg, r, NULL);
        if (k < 0)
                log_debug_errno(k, "Cannot reply to a queued Exec: %m");
}

static int exec_queue_dispatch(sd_event_source *es, void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        Manager *m = userdata;
        ExecQueued *q;
        Client *c;
        int r;

        /* Whoever else has called by now takes part in this round. Processing may free clients
         * (their names left the bus), and with them their queues: look at the line only after. */
        if (m->bus) {
                sd_bus *bus = sd_bus_ref(m->bus);

                for (unsigned i = 0; i < EXEC_QUEUE_READ_AHEAD; i++)
                        if (sd_bus_process(bus, NULL) <= 0)
                                break;
                sd_bus_unref(bus);
        }

        q = queue_pop(m, &c);
        if (!m->exec_turn_first)
                (void) sd_event_source_set_enabled(m->exec_source, SD_EVENT_OFF);
        if (!q)
                return 0;

        r = manager_exec_start(m, q->msg, c, &q->req, &q->user, &error);
        if (r < 0)
                reply_failure(q->msg, r, &error);
        queued_free(q);
        return 0;
}

int exec_queue_push(Client *c, sd_bus_message *msg, ExecRequest *req, UserInfo *u,
                    sd_bus_error *error) {
        Manager *m = c->manager;
        ExecQueued *q;
        uint64_t size = request_size(req);
        int r;

        if (c->n_exec_queued >= EXEC_QUEUE_CLIENT_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                         "Too many Execs of this connection waiting to start (%u).",
                                         EXEC_QUEUE_CLIENT_MAX);
        if (m->exec_queued_bytes + size > EXEC_QUEUE_BYTES_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                         "Too many Execs waiting to start (%u MiB of arguments in "
                                         "all); try again.", EXEC_QUEUE_BYTES_MAX / (1024 * 1024));

        if (!m->exec_source) {
                r = sd_event_add_defer(m->event, &m->exec_source, exec_queue_dispatch, m);
                if (r < 0)
                        return r;
                /* The bus's own priority: starts take turns with reading and relaying. */
                r = sd_event_source_set_priority(m->exec_source, SD_EVENT_PRIORITY_NORMAL);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(m->exec_source, "exec-queue");
        }

        q = calloc(1, sizeof(ExecQueued));
        if (!q)
                return -ENOMEM;
        r = sd_event_source_set_enabled(m->exec_source, SD_EVENT_ON);
        if (r < 0) {
                free(q);
                return r;
        }
        q->msg = sd_bus_message_ref(msg);
        q->req = *req;
        exec_request_init(req);
        q->user = *u;
        *u = (UserInfo) {};
        q->size = size;

        if (c->exec_last)
                c->exec_last->next = q;
        else
                c->exec_first = q;
        c->exec_last = q;
        c->n_exec_queued++;
        c->exec_queued_bytes += size;
        m->exec_queued_bytes += size;
        turn_append(m, c);
        return 1;
}

void exec_queue_drop_client(Client *c) {
        Manager *m = c->manager;
        ExecQueued *q;

        while ((q = c->exec_first)) {
                c->exec_first = q->next;
                m->exec_queued_bytes -= q->size;
                queued_free(q);
        }
        c->exec_last = NULL;
        c->n_exec_queued = 0;
        c->exec_queued_bytes = 0;
        turn_unlink(m, c);
}

void exec_queue_done(Manager *m) {
        while (m->exec_turn_first)
                exec_queue_drop_client(m->exec_turn_first);
        m->exec_source = sd_event_source_disable_unref(m->exec_source);
}
