/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Asking polkit whether a caller on the system bus may do something, without blocking. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "log.h"
#include "polkit.h"
#include "strv.h"

/* Bounds on what callers can make the daemon hold: each pending question is a message, a bus
 * match and a call in flight, and a question with interactive authentication can stay open for
 * as long as a person takes to type a password. Every question is a method call the daemon has
 * pending on its bus connection, and dbus-daemon allows a connection 128 of those
 * (max_replies_per_connection): past that, each further question fails and every caller is
 * denied with "polkit could not be asked". So all questions together stay well below 128 (the
 * rest is for pinging clients), and one uid, however many connections it opens, may have only
 * a quarter of them pending: others are still asked. */
#define POLKIT_QUERIES_MAX 64
#define POLKIT_QUERIES_PER_UID_MAX 16
/* 0 is sd-bus's default method call timeout (25 s); someone typing a password needs longer. */
#define POLKIT_INTERACTIVE_TIMEOUT_USEC (120 * 1000000ULL)

#define POLKIT_CHECK_AUTHORIZATION_ALLOW_USER_INTERACTION 1U

typedef enum QueryState {
        QUERY_PENDING,          /* asked polkit, no answer yet */
        QUERY_AUTHORIZED,
        QUERY_DENIED,           /* polkit said no */
        QUERY_CHALLENGE,        /* polkit wants interactive authentication */
        QUERY_FAILED,           /* polkit could not be asked or answered with an error */
} QueryState;

/* One question to polkit on behalf of one method call, which is re-dispatched once it is
 * answered. Keyed by the message in the registry; holds a reference on it. */
typedef struct PolkitQuery {
        Hashmap *registry;
        sd_bus_message *request;
        char *sender;
        uid_t uid;                      /* the sender's */
        char *action;
        char **details;
        sd_bus_slot *call_slot;         /* CheckAuthorization in flight */
        sd_bus_slot *match_slot;        /* NameOwnerChanged of the sender */
        sd_event_source *cleanup;       /* drops the answer if the re-dispatch did not take it */
        QueryState state;
        bool caller_gone;
} PolkitQuery;

static PolkitQuery *query_free(PolkitQuery *q) {
        if (!q)
                return NULL;
        sd_bus_slot_unref(q->call_slot);
        sd_bus_slot_unref(q->match_slot);
        sd_event_source_disable_unref(q->cleanup);
        sd_bus_message_unref(q->request);
        free(q->sender);
        free(q->action);
        strv_free(q->details);
        free(q);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(PolkitQuery *, query_free);

static void query_forget(PolkitQuery *q) {
        (void) hashmap_remove(q->registry, q->request);
        query_free(q);
}

static const char *action_purpose(const char *action) {
        if (streq(action, POLKIT_ACTION_EXEC))
                return "run commands";
        if (streq(action, POLKIT_ACTION_EXEC_AS_USER))
                return "run commands as another user";
        if (streq(action, POLKIT_ACTION_MANAGE))
                return "manage sessions of other callers";
        return "do this";
}

static int deny(sd_bus_error *error, const char *action, const char *why) {
        (void) sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Not authorized to %s (%s)%s%s.",
                                 action_purpose(action), action, why ? ": " : "", why ?: "");
        return -EACCES;
}

static char **details_copy(const char **details) {
        size_t n = 0;
        char **copy;

        while (details && details[n])
                n++;
        copy = calloc(n + 1, sizeof(char *));
        if (!copy)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                copy[i] = strdup(details[i]);
                if (!copy[i])
                        return strv_free(copy);
        }
        return copy;
}

static bool details_equal(char **a, const char **b) {
        size_t i = 0;

        for (; a[i] && b && b[i]; i++)
                if (!streq(a[i], b[i]))
                        return false;
        return !a[i] && (!b || !b[i]);
}

static int on_cleanup(sd_event_source *es, void *userdata) {
        PolkitQuery *q = userdata;

        /* The re-dispatched call had every chance to pick up its answer and did not (its handler
         * no longer asks, or asks about something else): do not keep the answer around. */
        log_debug("Dropping the unused polkit answer about %s for %s.", q->action, q->sender);
        query_forget(q);
        return 0;
}

static void query_redispatch(PolkitQuery *q) {
        sd_bus *bus = sd_bus_message_get_bus(q->request);
        sd_event *event;
        int r;

        /* The reply slot is done; the match stays until the answer is taken, so that a caller who
         * leaves in between still counts as gone. */
        q->call_slot = sd_bus_slot_unref(q->call_slot);

        r = sd_bus_enqueue_for_read(bus, q->request);
        if (r < 0) {
                /* No second dispatch: answer here, denied, so that the call does not hang. */
                log_warning_errno(r, "Cannot re-dispatch a call of %s after polkit answered, "
                                  "denying it: %m", q->sender);
                (void) sd_bus_reply_method_errorf(q->request, SD_BUS_ERROR_ACCESS_DENIED,
                                                  "Not authorized to %s (%s): internal error.",
                                                  action_purpose(q->action), q->action);
                query_forget(q);
                return;
        }

        event = sd_bus_get_event(bus);
        if (!event)
                return;
        /* Idle priority: runs only once the bus has nothing left to dispatch, the re-queued
         * message included. */
        r = sd_event_add_defer(event, &q->cleanup, on_cleanup, q);
        if (r >= 0)
                r = sd_event_source_set_priority(q->cleanup, SD_EVENT_PRIORITY_IDLE);
        if (r < 0)
                log_debug_errno(r, "Cannot schedule dropping an unused polkit answer, keeping it: %m");
}

static int on_check_authorization_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        PolkitQuery *q = userdata;
        const sd_bus_error *e;
        int authorized, challenge, r;

        e = sd_bus_message_get_error(reply);
        if (e) {
                log_warning("polkit could not check %s for %s, denying: %s: %s", q->action, q->sender,
                            e->name, e->message ?: "(no message)");
                q->state = QUERY_FAILED;
        } else {
                /* (bba{ss}): is_authorized, is_challenge, details (unused) */
                r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
                if (r >= 0)
                        r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
                if (r < 0) {
                        log_warning_errno(r, "polkit's answer about %s for %s is malformed, denying: %m",
                                          q->action, q->sender);
                        q->state = QUERY_FAILED;
                } else if (authorized)
                        q->state = QUERY_AUTHORIZED;
                else if (challenge)
                        q->state = QUERY_CHALLENGE;
                else
                        q->state = QUERY_DENIED;
        }

        query_redispatch(q);
        return 0;
}

static int on_name_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        PolkitQuery *q = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        /* A unique name never comes back: gone is gone. */
        if (streq(name, q->sender) && !new_owner[0])
                q->caller_gone = true;
        return 0;
}

static int on_match_installed(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        PolkitQuery *q = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        /* Without the match a caller leaving would go unnoticed here; polkit itself still refuses
         * a name that is gone when it looks the subject up, and the manager tracks its clients,
         * so this is a lost refinement, not a hole: carry on. */
        if (e)
                log_debug("Cannot watch %s while asking polkit: %s", q->sender, e->message ?: e->name);
        return 0;
}

static unsigned queries_of_uid(Hashmap *registry, uid_t uid) {
        PolkitQuery *q;
        size_t state = 0;
        unsigned n = 0;

        while (hashmap_iterate(registry, &state, (void **) &q))
                if (q->uid == uid)
                        n++;
        return n;
}

static int query_start(sd_bus_message *msg, const char *action, const char **details, uid_t uid,
                       Hashmap *registry, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        _cleanup_(query_freep) PolkitQuery *q = NULL;
        sd_bus *bus = sd_bus_message_get_bus(msg);
        const char *sender = sd_bus_message_get_sender(msg);
        _cleanup_free_ char *match = NULL;
        bool interactive;
        int r;

        if (queries_of_uid(registry, uid) >= POLKIT_QUERIES_PER_UID_MAX) {
                (void) sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                         "Too many authorization checks pending for uid %u (at most "
                                         "%u): call again once earlier calls are answered.",
                                         (unsigned) uid, POLKIT_QUERIES_PER_UID_MAX);
                return -EBUSY;
        }
        if (hashmap_size(registry) >= POLKIT_QUERIES_MAX) {
                (void) sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                         "Too many authorization checks pending (at most %u): call "
                                         "again shortly.", POLKIT_QUERIES_MAX);
                return -EBUSY;
        }

        q = calloc(1, sizeof(PolkitQuery));
        if (!q)
                return -ENOMEM;
        q->request = sd_bus_message_ref(msg);
        q->uid = uid;
        q->sender = strdup(sender);
        q->action = strdup(action);
        q->details = details_copy(details);
        if (!q->sender || !q->action || !q->details)
                return -ENOMEM;

        /* Watch the caller first: the bus processes our messages in order, so the match is in
         * place before polkit hears of the caller, and its leaving after that is seen here. */
        if (asprintf(&match,
                     "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                     "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='%s'",
                     sender) < 0) {
                match = NULL;
                return -ENOMEM;
        }
        r = sd_bus_add_match_async(bus, &q->match_slot, match, on_name_owner_changed, on_match_installed,
                                   q);
        if (r < 0)
                return r;

        r = sd_bus_message_new_method_call(bus, &call, "org.freedesktop.PolicyKit1",
                                           "/org/freedesktop/PolicyKit1/Authority",
                                           "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization");
        if (r < 0)
                return r;
        /* subject: (sa{sv}) */
        r = sd_bus_message_append(call, "(sa{sv})", "system-bus-name", 1, "name", "s", sender);
        if (r < 0)
                return r;
        r = sd_bus_message_append(call, "s", action);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(call, 'a', "{ss}");
        if (r < 0)
                return r;
        for (size_t i = 0; details && details[i] && details[i + 1]; i += 2) {
                r = sd_bus_message_append(call, "{ss}", details[i], details[i + 1]);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(call);
        if (r < 0)
                return r;
        interactive = sd_bus_message_get_allow_interactive_authorization(msg) > 0;
        r = sd_bus_message_append(call, "us",
                                  interactive ? POLKIT_CHECK_AUTHORIZATION_ALLOW_USER_INTERACTION : 0U,
                                  "" /* cancellation id */);
        if (r < 0)
                return r;

        r = sd_bus_call_async(bus, &q->call_slot, call, on_check_authorization_reply, q,
                              interactive ? POLKIT_INTERACTIVE_TIMEOUT_USEC : 0);
        if (r < 0)
                return r;

        r = hashmap_put(registry, msg, q);
        if (r < 0)
                return r;
        q->registry = registry;
        log_debug("Asking polkit about %s for %s%s.", action, sender, interactive ? " (interactive)" : "");
        TAKE_PTR(q);
        return 0;
}

/* The answer to a question that polkit has answered: consumes the query. */
static int query_answer(PolkitQuery *q, sd_bus_error *error) {
        _cleanup_free_ char *action = strdup(q->action);
        QueryState state = q->state;
        bool gone = q->caller_gone;

        query_forget(q);
        if (!action)
                return -ENOMEM;

        if (gone)
                return deny(error, action, "the caller is gone");
        switch (state) {
        case QUERY_AUTHORIZED:
                return 1;
        case QUERY_CHALLENGE:
                return deny(error, action, "interactive authentication is required");
        case QUERY_FAILED:
                return deny(error, action, "polkit could not be asked");
        case QUERY_DENIED:
        default:
                return deny(error, action, NULL);
        }
}

int polkit_check(sd_bus_message *msg, const char *action, const char **details, uid_t caller_uid,
                 Hashmap **registry, sd_bus_error *error) {
        sd_bus *bus;
        PolkitQuery *q;
        int r;

        if (!msg || !action || !registry)
                return -EINVAL;

        if (caller_uid == 0)
                return 1;

        q = *registry ? hashmap_get(*registry, msg) : NULL;
        if (q) {
                /* Dispatched again before polkit answered: keep waiting, the answer re-dispatches it
                 * once more. */
                if (q->state == QUERY_PENDING)
                        return 0;
                if (streq(q->action, action) && details_equal(q->details, details))
                        return query_answer(q, error);
                /* The handler asks something else this time (what it decides on changed under
                 * it): that answer is not for this question. */
                query_forget(q);
        }

        /* polkit is asked on the system bus, about a bus name. On a peer-to-peer connection the
         * "bus" is the caller itself, which would answer its own question: never ask there. */
        bus = sd_bus_message_get_bus(msg);
        if (sd_bus_is_bus_client(bus) <= 0 || !sd_bus_message_get_sender(msg))
                return deny(error, action, "polkit is only asked on the system bus");

        if (!*registry) {
                *registry = hashmap_new(trivial_hash, trivial_equal);
                if (!*registry)
                        return deny(error, action, "out of memory");
        }

        r = query_start(msg, action, details, caller_uid, *registry, error);
        if (r == -EBUSY)
                return r;
        if (r < 0) {
                log_warning_errno(r, "Cannot ask polkit about %s, denying: %m", action);
                return deny(error, action, "polkit could not be asked");
        }
        return 0;
}

void polkit_registry_free(Hashmap *registry) {
        PolkitQuery *q;
        size_t state = 0;

        while (hashmap_iterate(registry, &state, (void **) &q))
                query_free(q);
        hashmap_free(registry);
}
