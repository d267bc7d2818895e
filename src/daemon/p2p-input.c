/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon reads a peer-to-peer connection's socket for sd-bus: bounded, and with no fd left behind.
 *
 * sd-bus 252 (bus-socket.c, bus_socket_make_message()) hands the message it read, with every fd that
 * came with it, to bus_message_from_malloc(); when that refuses the message with -EBADMSG (among
 * others when the UNIX_FDS header field does not match the number of fds received, checked in
 * bus_message_parse_fields()), it drops the message and then forgets bus->fds without closing them.
 * The message owns its fds only once parsed (free_fds), so nobody closes them: a peer sending a
 * method call without UNIX_FDS and 250 fds made the daemon keep 250 fds per message, after the
 * connection was gone too. It also buffers a message of up to BUS_MESSAGE_SIZE_MAX (128 MiB) as
 * long as the peer takes to send it.
 *
 * So sd-bus does not read the peer's socket. It reads one end of a socketpair, and the daemon reads
 * the socket and passes on: the authentication text as it is (bounded), then message by message,
 * each only once it is whole, and with it only fds sd-bus will take: when the header is one that
 * bus_message_parse_fields() accepts, exactly the number UNIX_FDS declares; otherwise none (sd-bus
 * then drops the message, with nothing to leak). The rest are closed here. sd-bus still writes to the
 * socket itself (replies, signals, spliced Output: see output-splice.c), so nothing else changes. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"
#include "list.h"
#include "listen.h"
#include "log.h"
#include "p2p-input.h"

#define HEADER_SIZE 16
#define ALIGN8(x) (((x) + 7) & ~(uint64_t) 7)
/* One read of the authentication text. */
#define AUTH_READ_MAX 4096
/* Lines of authentication kept to be checked: "AUTH EXTERNAL " and a uid in hex fit. */
#define AUTH_LINE_MAX 64
/* A buffer this large is freed once its message is passed on, not kept for the next one. */
#define BUFFER_KEEP_MAX (64 * 1024)

struct P2PInput {
        Manager *manager;
        uid_t uid;
        int fd;                         /* a duplicate of the peer's socket, read here */
        int pair_fd;                    /* our end of the socketpair that sd-bus reads */
        sd_event_source *in_source, *out_source, *timer;
        bool authenticated;             /* BEGIN was seen: binary messages follow */
        bool eof;                       /* the peer is done: close pair_fd once all is passed on */
        bool dead;
        size_t auth_bytes;              /* authentication text so far */
        sd_bus *bus;                    /* the connection that reads pair_fd's other end */
        bool passed_on;                 /* a whole message went to sd-bus in this dispatch */
        bool check_auth;                /* a unix socket: only EXTERNAL, as the peer's own uid */
        bool first_byte_seen;           /* the credentials NUL, before the first line */
        bool holding;                   /* the current line is kept back until it is checked */
        uint8_t line[AUTH_LINE_MAX];    /* the start of the current line of it ... */
        size_t line_len;                /* ... and its length so far (AUTH_LINE_MAX + 1: longer) */

        uint8_t *buf;                   /* the message being read, or the authentication text */
        size_t buf_alloc, have, size;   /* size: the message's, once its header is in; else 0 */
        size_t sent;                    /* passing on: bytes of buf already written to pair_fd */
        bool sending;
        uint64_t reserved;              /* counted in Manager.p2p_input_total */
        bool waiting;                   /* in Manager.p2p_input_waiting */
        uint8_t *stash;                 /* bytes that came after BEGIN in the same read */
        size_t stash_len, stash_off;
        int fds[P2P_MESSAGE_FDS_MAX];   /* received with this message */
        size_t n_fds, n_pass;           /* n_pass: how many of them go with it */
        LIST_FIELDS(P2PInput, waiting);
};

static void close_fds(P2PInput *p) {
        for (size_t i = 0; i < p->n_fds; i++)
                safe_close(p->fds[i]);
        p->n_fds = p->n_pass = 0;
}

static void release(P2PInput *p) {
        Manager *m = p->manager;

        if (p->waiting) {
                LIST_REMOVE(waiting, m->p2p_input_waiting, p);
                p->waiting = false;
        }
        if (p->reserved > 0) {
                m->p2p_input_total -= p->reserved;
                p->reserved = 0;
                p2p_input_wake(m);
        }
}

/* Stops reading and passing on. sd-bus then reads the end of its input and reports a disconnect,
 * which frees the client and this with it. */
static void drop(P2PInput *p, bool shut) {
        if (p->dead)
                return;
        p->dead = true;
        (void) sd_event_source_set_enabled(p->in_source, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(p->out_source, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
        if (shut)
                (void) shutdown(p->fd, SHUT_RDWR);
        close_fds(p);
        release(p);
        p->pair_fd = safe_close(p->pair_fd);
}

/* The names in a message header, as sd-bus checks them (object_path_is_valid() and friends). */
static bool name_char(char c, bool digit_ok, bool dash_ok) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                (digit_ok && c >= '0' && c <= '9') || (dash_ok && c == '-');
}

static bool object_path_valid(const char *s) {
        bool slash = true;

        if (s[0] != '/')
                return false;
        if (s[1] == 0)
                return true;
        for (const char *c = s + 1; *c; c++) {
                if (*c == '/') {
                        if (slash)
                                return false;
                        slash = true;
                } else if (name_char(*c, true, false))
                        slash = false;
                else
                        return false;
        }
        return !slash;
}

/* Interface, error and well-known bus names: at least two dot-separated elements. */
static bool dotted_name_valid(const char *s, bool dash_ok, bool unique) {
        size_t n = strlen(s), dots = 0;
        bool start = true;

        if (n == 0 || n > 255)
                return false;
        for (const char *c = s; *c; c++) {
                if (*c == '.') {
                        if (start)
                                return false;
                        dots++;
                        start = true;
                } else if (name_char(*c, !start || unique, dash_ok))
                        start = false;
                else
                        return false;
        }
        return !start && dots > 0;
}

static bool member_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 255 || !name_char(s[0], false, false))
                return false;
        for (const char *c = s; *c; c++)
                if (!name_char(*c, true, false))
                        return false;
        return true;
}

static bool bus_name_valid(const char *s) {
        if (s[0] == ':')
                return dotted_name_valid(s + 1, true, true) && strlen(s) <= 255;
        return dotted_name_valid(s, true, false);
}

/* One complete type of a signature; arrays and structs nest at most 32 deep each, as D-Bus says. */
static bool signature_type(const char *s, size_t *i, unsigned arrays, unsigned structs) {
        char c = s[*i];

        if (c && strchr("ybnqiuxtdsoghv", c)) {
                (*i)++;
                return true;
        }
        if (c == 'a') {
                if (++arrays > 32)
                        return false;
                (*i)++;
                if (s[*i] != '{')
                        return signature_type(s, i, arrays, structs);
                (*i)++;
                if (!s[*i] || !strchr("ybnqiuxtdsogh", s[*i]))
                        return false;
                (*i)++;
                if (!signature_type(s, i, arrays, structs + 1) || s[*i] != '}')
                        return false;
                (*i)++;
                return true;
        }
        if (c == '(') {
                if (++structs > 32)
                        return false;
                (*i)++;
                if (s[*i] == ')')
                        return false;
                while (s[*i] != ')')
                        if (!signature_type(s, i, arrays, structs))
                                return false;
                (*i)++;
                return true;
        }
        return false;
}

static bool signature_valid(const char *s) {
        size_t i = 0;

        while (s[i])
                if (!signature_type(s, &i, 0, 0))
                        return false;
        return true;
}

typedef struct Fields {
        const uint8_t *msg;
        size_t pos, end;
        bool bswap;
} Fields;

static bool fields_align(Fields *f, size_t a) {
        size_t n = (f->pos + a - 1) & ~(a - 1);

        if (n > f->end)
                return false;
        f->pos = n;
        return true;
}

static bool fields_u32(Fields *f, uint32_t *ret) {
        uint32_t v;

        if (!fields_align(f, 4) || f->end - f->pos < 4)
                return false;
        memcpy(&v, f->msg + f->pos, 4);
        f->pos += 4;
        *ret = f->bswap ? __builtin_bswap32(v) : v;
        return true;
}

/* A string of 'len' bytes and its NUL, with no NUL inside. */
static bool fields_string(Fields *f, size_t len, const char **ret) {
        const char *s = (const char *) f->msg + f->pos;

        if (f->end - f->pos < len + 1 || s[len] != 0 || memchr(s, 0, len))
                return false;
        f->pos += len + 1;
        *ret = s;
        return true;
}

/* How many fds the message declares when sd-bus 252 would accept its header (message_from_header()
 * and bus_message_parse_fields()), else -EBADMSG. Fields that sd-bus would skip make this refuse as
 * well: then the fds are not passed, and a message that needs them is dropped by sd-bus as broken,
 * which no client of ours sends. */
static int message_declared_fds(const uint8_t *msg, size_t fields_size, uint32_t body_size) {
        Fields f = { .msg = msg, .pos = HEADER_SIZE, .end = HEADER_SIZE + fields_size,
                     .bswap = (msg[0] == 'B') != (__BYTE_ORDER == __BIG_ENDIAN) };
        const char *path = NULL, *interface = NULL, *member = NULL, *signature = NULL;
        const char *sender = NULL;
        uint32_t serial, unix_fds = 0, v;
        unsigned seen = 0;

        memcpy(&serial, msg + 8, 4);
        /* Only method calls pass fds to us; a method call answers nothing. */
        if (msg[1] != SD_BUS_MESSAGE_METHOD_CALL || msg[3] != 1 || serial == 0)
                return -EBADMSG;

        while (f.pos < f.end) {
                uint8_t code;
                size_t siglen;
                const char *sig, *s;

                if (!fields_align(&f, 8) || f.end - f.pos < 3)
                        return -EBADMSG;
                code = msg[f.pos++];
                siglen = msg[f.pos++];
                if (code == 0 || code > 9 || (seen & (1U << code)) || !fields_string(&f, siglen, &sig))
                        return -EBADMSG;
                seen |= 1U << code;

                switch (code) {
                case 1: case 2: case 3: case 6: case 7:
                        if (!streq(sig, code == 1 ? "o" : "s") || !fields_u32(&f, &v) ||
                            !fields_string(&f, v, &s))
                                return -EBADMSG;
                        if (code == 1) {
                                if (!object_path_valid(s))
                                        return -EBADMSG;
                                path = s;
                        } else if (code == 2) {
                                if (!dotted_name_valid(s, false, false))
                                        return -EBADMSG;
                                interface = s;
                        } else if (code == 3) {
                                if (!member_valid(s))
                                        return -EBADMSG;
                                member = s;
                        } else {
                                if (!bus_name_valid(s))
                                        return -EBADMSG;
                                if (code == 7)
                                        sender = s;
                        }
                        break;
                case 8:
                        if (!streq(sig, "g") || f.pos >= f.end)
                                return -EBADMSG;
                        v = msg[f.pos++];
                        if (!fields_string(&f, v, &signature) || !signature_valid(signature))
                                return -EBADMSG;
                        break;
                case 9:
                        if (!streq(sig, "u") || !fields_u32(&f, &unix_fds))
                                return -EBADMSG;
                        break;
                default:
                        /* ERROR_NAME, REPLY_SERIAL: not in a method call. */
                        return -EBADMSG;
                }
        }

        if (!path || !member || (body_size > 0 && !signature))
                return -EBADMSG;
        if (streq(path, "/org/freedesktop/DBus/Local") ||
            streq_ptr(interface, "org.freedesktop.DBus.Local") ||
            streq_ptr(sender, "org.freedesktop.DBus.Local"))
                return -EBADMSG;
        return (int) MIN(unix_fds, (uint32_t) INT32_MAX);
}

/* Reads up to n bytes, what came after BEGIN first. Returns the count, 0 at the end, -EAGAIN, or
 * another negative errno. fds that come with them are kept in p->fds; more than
 * P2P_MESSAGE_FDS_MAX: -EMSGSIZE (the kernel closes what does not fit into the buffer). */
static ssize_t input_read(P2PInput *p, void *dst, size_t n) {
        union {
                struct cmsghdr cmsg;
                uint8_t buf[CMSG_SPACE(sizeof(int) * P2P_MESSAGE_FDS_MAX)];
        } control;
        struct iovec iov = { .iov_base = dst, .iov_len = n };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = &control, .msg_controllen = sizeof control };
        struct cmsghdr *cmsg;
        bool too_many = false;
        ssize_t k;

        if (p->stash) {
                k = (ssize_t) MIN(n, p->stash_len - p->stash_off);
                memcpy(dst, p->stash + p->stash_off, (size_t) k);
                p->stash_off += (size_t) k;
                if (p->stash_off == p->stash_len) {
                        free(p->stash);
                        p->stash = NULL;
                }
                return k;
        }

        k = recvmsg(p->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (k < 0)
                return errno == EINTR ? -EAGAIN : -errno;
        for (cmsg = CMSG_FIRSTHDR(&mh); cmsg; cmsg = CMSG_NXTHDR(&mh, cmsg)) {
                size_t c;
                int *fds;

                if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
                        continue;
                c = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                fds = (int *) CMSG_DATA(cmsg);
                for (size_t i = 0; i < c; i++) {
                        if (p->n_fds < P2P_MESSAGE_FDS_MAX)
                                p->fds[p->n_fds++] = fds[i];
                        else {
                                safe_close(fds[i]);
                                too_many = true;
                        }
                }
        }
        if (too_many || (mh.msg_flags & MSG_CTRUNC))
                return -EMSGSIZE;
        return k;
}

static int buffer_reserve(P2PInput *p, size_t size) {
        uint8_t *b;

        if (size <= p->buf_alloc)
                return 0;
        b = realloc(p->buf, size);
        if (!b)
                return -ENOMEM;
        p->buf = b;
        p->buf_alloc = size;
        return 0;
}

static void message_done(P2PInput *p) {
        p->have = p->size = p->sent = 0;
        p->sending = false;
        if (p->buf_alloc > BUFFER_KEEP_MAX) {
                free(p->buf);
                p->buf = NULL;
                p->buf_alloc = 0;
        }
        release(p);
}

/* Writes what is read and not yet passed on to sd-bus. 1: all of it, 0: the socketpair is full
 * (reading the peer stops until it has room), negative: sd-bus's end is gone. */
static int input_forward(P2PInput *p) {
        union {
                struct cmsghdr cmsg;
                uint8_t buf[CMSG_SPACE(sizeof(int) * P2P_MESSAGE_FDS_MAX)];
        } control = {};
        size_t len = (p->size ? p->size : p->have) - p->sent;
        struct iovec iov = { .iov_base = p->buf + p->sent, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t k;

        if (p->n_pass > 0) {
                mh.msg_control = &control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * p->n_pass);
                control.cmsg.cmsg_level = SOL_SOCKET;
                control.cmsg.cmsg_type = SCM_RIGHTS;
                control.cmsg.cmsg_len = CMSG_LEN(sizeof(int) * p->n_pass);
                memcpy(CMSG_DATA(&control.cmsg), p->fds, sizeof(int) * p->n_pass);
        }
        k = sendmsg(p->pair_fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        goto wait;
                return -errno;
        }
        /* The fds went with the first bytes: sd-bus takes them with the message they belong to. */
        close_fds(p);
        p->sent += (size_t) k;
        if ((size_t) k == len) {
                (void) sd_event_source_set_enabled(p->out_source, SD_EVENT_OFF);
                if (p->authenticated)
                        p->passed_on = true;
                return 1;
        }
wait:
        p->sending = true;
        (void) sd_event_source_set_enabled(p->in_source, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(p->out_source, SD_EVENT_ON);
        return 0;
}

static int hex_digit(uint8_t c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* The uid claimed in hex after EXTERNAL (in AUTH or DATA) is the peer's own, or there is none. */
static bool external_data_ok(const P2PInput *p, const uint8_t *hex, size_t len) {
        char digits[AUTH_LINE_MAX / 2 + 1];
        size_t n = 0;
        uint64_t v = 0;

        if (len == 0)
                return true;
        if (len % 2 != 0 || len / 2 >= sizeof digits)
                return false;
        for (size_t i = 0; i < len; i += 2) {
                int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);

                if (hi < 0 || lo < 0)
                        return false;
                digits[n++] = (char) (hi << 4 | lo);
        }
        digits[n] = 0;
        if (n > 1 && digits[0] == '0')
                return false; /* as sd-bus, which takes a uid in its one spelling */
        for (size_t i = 0; i < n; i++) {
                if (digits[i] < '0' || digits[i] > '9' || v > UINT32_MAX)
                        return false;
                v = v * 10 + (uint64_t) (digits[i] - '0');
        }
        return n > 0 && v == p->uid;
}

/* A line that starts with AUTH or DATA, without its newline (and '\r'): may sd-bus see it? */
static bool auth_line_ok(const P2PInput *p) {
        const uint8_t *l = p->line;
        size_t len = p->line_len;

        if (len > sizeof p->line)
                return false;
        if (len > 0 && l[len - 1] == '\r')
                len--;
        if (memcmp(l, "DATA", 4) == 0)
                return len == 4 || (l[4] == ' ' && external_data_ok(p, l + 5, len - 5));
        if (len < 13 || memcmp(l, "AUTH EXTERNAL", 13) != 0)
                return false;
        return len == 13 || (l[13] == ' ' && external_data_ok(p, l + 14, len - 14));
}

/* A line refused here gets the answer sd-bus would give, and sd-bus never sees it. */
static int auth_reject(P2PInput *p) {
        static const char answer[] = "REJECTED EXTERNAL\r\n";
        ssize_t k;

        log_debug("Peer-to-peer client (uid %u): refusing an authentication line.", (unsigned) p->uid);
        k = send(p->fd, answer, sizeof answer - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k != (ssize_t) sizeof answer - 1)
                return -ECONNRESET; /* a peer that does not read its answers */
        return 0;
}

/* Is the start of a line, as far as it is in, still maybe AUTH or DATA? */
static bool line_may_be_checked(const P2PInput *p) {
        size_t n = MIN(p->line_len, (size_t) 4);

        return memcmp(p->line, "AUTH", n) == 0 || memcmp(p->line, "DATA", n) == 0;
}

/* The authentication text goes on as it is read, line by line; after the line BEGIN, what follows
 * is read as messages. sd-bus refuses fds during authentication (closing the connection), so do
 * we. The inner bus takes any mechanism (the uid comes from the real socket, see listen.c), so on
 * a unix socket the AUTH and DATA lines are checked here, as sd-bus checks them on a socket of its
 * own: EXTERNAL only, and a uid given with it must be the peer's. (vsock carries no credentials:
 * there, ANONYMOUS is the mechanism, and lines go on as they are.) Returns 1 to go on, 0 to wait,
 * negative to drop the connection. */
static int input_auth(P2PInput *p) {
        uint8_t in[AUTH_READ_MAX];
        size_t out = 0;
        ssize_t k;
        int r;

        r = buffer_reserve(p, AUTH_READ_MAX + AUTH_LINE_MAX + 1);
        if (r < 0)
                return r;
        k = input_read(p, in, MIN((size_t) AUTH_READ_MAX, P2P_AUTH_TEXT_MAX - p->auth_bytes));
        if (k == -EAGAIN)
                return 0;
        if (k == 0)
                return -ECONNRESET;
        if (k < 0 || p->n_fds > 0)
                return log_debug_errno(k < 0 && k != -EMSGSIZE ? (int) -k : EPROTO,
                                       "Dropping a peer-to-peer client (uid %u) during authentication: %m",
                                       (unsigned) p->uid);
        p->auth_bytes += (size_t) k;

        for (size_t i = 0; i < (size_t) k; i++) {
                uint8_t c = in[i];
                size_t rest = (size_t) k - i - 1;

                if (!p->first_byte_seen) {
                        /* the credentials NUL (sd-bus checks it), which no line starts */
                        p->first_byte_seen = true;
                        p->holding = p->check_auth;
                        p->buf[out++] = c;
                        continue;
                }
                if (c != '\n') {
                        if (p->line_len < sizeof p->line)
                                p->line[p->line_len] = c;
                        p->line_len = MIN(p->line_len + 1, sizeof p->line + 1);
                        if (!p->holding)
                                p->buf[out++] = c;
                        else if (!line_may_be_checked(p)) {
                                /* not one to check: what was kept back goes on */
                                memcpy(p->buf + out, p->line, p->line_len);
                                out += p->line_len;
                                p->holding = false;
                        }
                        continue;
                }

                if (p->holding && p->line_len >= 4) {
                        if (!auth_line_ok(p)) {
                                r = auth_reject(p);
                                if (r < 0)
                                        return r;
                                p->line_len = 0;
                                p->holding = p->check_auth;
                                continue;
                        }
                }
                if (p->holding) {
                        memcpy(p->buf + out, p->line, p->line_len);
                        out += p->line_len;
                }
                p->buf[out++] = c;
                if ((p->line_len == 5 || (p->line_len == 6 && p->line[5] == '\r')) &&
                    memcmp(p->line, "BEGIN", 5) == 0) {
                        p->authenticated = true;
                        if (rest > 0) {
                                p->stash = malloc(rest);
                                if (!p->stash)
                                        return -ENOMEM;
                                memcpy(p->stash, in + i + 1, rest);
                                p->stash_len = rest;
                                p->stash_off = 0;
                        }
                        break;
                }
                p->line_len = 0;
                p->holding = p->check_auth;
        }
        if (!p->authenticated && p->auth_bytes >= P2P_AUTH_TEXT_MAX)
                return log_warning_errno(EMSGSIZE, "Dropping a peer-to-peer client (uid %u): more than %u "
                                         "bytes of authentication.", (unsigned) p->uid, P2P_AUTH_TEXT_MAX);

        if (out == 0)
                return 1;
        p->have = p->size = out;
        r = input_forward(p);
        if (r <= 0)
                return r;
        p->have = p->size = p->sent = 0;
        return 1;
}

/* The whole message is in: decide which fds go with it. */
static int message_complete(P2PInput *p) {
        uint32_t fields_size;
        int declared;

        (void) sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
        if (p->n_fds == 0)
                return 0;

        memcpy(&fields_size, p->buf + 12, 4);
        if ((p->buf[0] == 'B') != (__BYTE_ORDER == __BIG_ENDIAN))
                fields_size = __builtin_bswap32(fields_size);
        declared = message_declared_fds(p->buf, fields_size, (uint32_t) (p->size - HEADER_SIZE -
                                                                         ALIGN8(fields_size)));
        if (declared > P2P_MESSAGE_FDS_MAX)
                return log_warning_errno(EMSGSIZE, "Dropping a peer-to-peer client (uid %u): a message "
                                         "declares %i fds.", (unsigned) p->uid, declared);
        if (declared < 0 || (size_t) declared > p->n_fds) {
                /* sd-bus would refuse it and keep its fds: it gets none, and still refuses it. */
                log_debug("Peer-to-peer client (uid %u): closing the %zu fds of a message that declares "
                          "%i.", (unsigned) p->uid, p->n_fds, declared);
                close_fds(p);
                return 0;
        }
        if ((size_t) declared < p->n_fds)
                log_debug("Peer-to-peer client (uid %u): closing %zu fds its message does not declare.",
                          (unsigned) p->uid, p->n_fds - (size_t) declared);
        for (size_t i = (size_t) declared; i < p->n_fds; i++)
                safe_close(p->fds[i]);
        p->n_fds = p->n_pass = (size_t) declared;
        return 0;
}

/* Its header is in: check the size, and count it against the bound on all partial messages. Returns 1
 * to go on, 0 to wait until others finish, negative to drop the connection. */
static int message_begin(P2PInput *p) {
        Manager *m = p->manager;
        uint32_t body_size, fields_size;
        uint64_t size;
        bool bswap;

        if (p->buf[0] != 'l' && p->buf[0] != 'B')
                return log_debug_errno(EBADMSG, "Peer-to-peer client (uid %u) sent garbage, dropping it.",
                                       (unsigned) p->uid);
        bswap = (p->buf[0] == 'B') != (__BYTE_ORDER == __BIG_ENDIAN);
        memcpy(&body_size, p->buf + 4, 4);
        memcpy(&fields_size, p->buf + 12, 4);
        if (bswap) {
                body_size = __builtin_bswap32(body_size);
                fields_size = __builtin_bswap32(fields_size);
        }
        size = HEADER_SIZE + ALIGN8((uint64_t) fields_size) + body_size;
        if (size > P2P_MESSAGE_MAX)
                return log_warning_errno(EMSGSIZE, "Dropping a peer-to-peer client (uid %u): a message of "
                                         "%llu bytes, more than %u.", (unsigned) p->uid,
                                         (unsigned long long) size, P2P_MESSAGE_MAX);

        if (m->p2p_input_total + size > P2P_INPUT_TOTAL_MAX) {
                if (!p->waiting) {
                        LIST_PREPEND(waiting, m->p2p_input_waiting, p);
                        p->waiting = true;
                        log_debug("Peer-to-peer client (uid %u) waits: %llu bytes of messages are being "
                                  "received.", (unsigned) p->uid, (unsigned long long) m->p2p_input_total);
                }
                p->size = (size_t) size;
                (void) sd_event_source_set_enabled(p->in_source, SD_EVENT_OFF);
                (void) sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
                return 0;
        }
        if (p->waiting) {
                LIST_REMOVE(waiting, m->p2p_input_waiting, p);
                p->waiting = false;
        }
        p->reserved = size;
        m->p2p_input_total += size;
        p->size = (size_t) size;
        return buffer_reserve(p, (size_t) size) < 0 ? -ENOMEM : 1;
}

static void timer_arm(P2PInput *p) {
        uint64_t now;

        if (sd_event_source_get_enabled(p->timer, NULL) > 0)
                return;
        if (sd_event_now(p->manager->event, CLOCK_MONOTONIC, &now) < 0)
                return;
        (void) sd_event_source_set_time(p->timer, now + P2P_MESSAGE_TIMEOUT_USEC);
        (void) sd_event_source_set_enabled(p->timer, SD_EVENT_ONESHOT);
}

/* Reads and passes on as much as there is. Returns 0, or negative to drop the connection
 * (-ECONNRESET: the peer closed its end). */
static int input_process(P2PInput *p) {
        int r;

        /* Bounded, so that one busy peer does not keep the others waiting: the socket is watched
         * level-triggered and wakes us again. */
        for (unsigned i = 0; i < 256 && !p->dead; i++) {
                ssize_t k;

                if (p->sending) {
                        r = input_forward(p);
                        if (r <= 0)
                                return r;
                        if (p->reserved > 0)
                                message_done(p);
                        else
                                p->have = p->size = p->sent = 0;
                        p->sending = false;
                        (void) sd_event_source_set_enabled(p->in_source, SD_EVENT_ON);
                }
                if (p->eof)
                        return -ECONNRESET;

                if (!p->authenticated) {
                        r = input_auth(p);
                        if (r <= 0)
                                return r;
                        continue;
                }

                if (p->size > 0 && p->reserved == 0) {
                        /* Woken: its header is in, and there may be room now. */
                        r = message_begin(p);
                        if (r <= 0)
                                return r;
                }
                if (p->size > 0 && p->have == p->size) {
                        r = message_complete(p);
                        if (r < 0)
                                return r;
                        r = input_forward(p);
                        if (r <= 0)
                                return r;
                        message_done(p);
                        /* One message per wakeup: trying for the next would cost every call a read
                         * that finds nothing, and the socket, watched level-triggered, wakes us again
                         * when there is more. Not so what came after BEGIN: nothing would. */
                        if (!p->stash)
                                return 0;
                        continue;
                }

                r = buffer_reserve(p, p->size ?: HEADER_SIZE);
                if (r < 0)
                        return r;
                k = input_read(p, p->buf + p->have, (p->size ?: HEADER_SIZE) - p->have);
                if (k == -EAGAIN) {
                        if (p->have > 0)
                                timer_arm(p);
                        return 0;
                }
                if (k == -EMSGSIZE)
                        return log_warning_errno(EMSGSIZE, "Dropping a peer-to-peer client (uid %u): more "
                                                 "than %u fds with a message.", (unsigned) p->uid,
                                                 P2P_MESSAGE_FDS_MAX);
                if (k < 0)
                        return (int) k;
                if (k == 0) {
                        /* A message cut short is dropped; sd-bus sees the end after the whole ones. */
                        p->eof = true;
                        return -ECONNRESET;
                }
                p->have += (size_t) k;
                if (p->size == 0 && p->have == HEADER_SIZE) {
                        r = message_begin(p);
                        if (r <= 0)
                                return r;
                }
        }
        return 0;
}

static void input_run(P2PInput *p) {
        int r = input_process(p);

        if (r == -ECONNRESET) {
                /* The peer closed its end: once what was whole is passed on, sd-bus reads the end
                 * too. The socket stays open for what sd-bus still writes. */
                p->eof = true;
                (void) sd_event_source_set_enabled(p->in_source, SD_EVENT_OFF);
                if (!p->sending)
                        drop(p, false);
        } else if (r < 0) {
                if (r != -EMSGSIZE && r != -EPROTO && r != -EBADMSG)
                        log_debug_errno(r, "Peer-to-peer client (uid %u): reading failed, dropping it: %m",
                                        (unsigned) p->uid);
                drop(p, true);
        }
}

/* Reads and passes on; then sd-bus reads what was passed on at once, rather than when the
 * socketpair wakes it in the next iteration of the event loop: one wakeup less per call. */
static void input_event(P2PInput *p) {
        Manager *m = p->manager;
        sd_bus *bus;
        int r = 0;

        p->passed_on = false;
        input_run(p);
        if (!p->passed_on || !p->bus)
                return;
        /* Processing may free the client, and p with it. */
        bus = sd_bus_ref(p->bus);
        for (unsigned i = 0; i < 16; i++) {
                r = sd_bus_process(bus, NULL);
                if (r <= 0)
                        break;
        }
        if (r < 0) {
                /* as sd-bus's own handler does with a connection it cannot process */
                Client *c = hashmap_get(m->p2p_by_bus, bus);

                log_debug_errno(r, "Peer-to-peer client: processing failed, dropping it: %m");
                if (c)
                        client_free(c);
        }
        sd_bus_unref(bus);
}

static int on_input(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        input_event(userdata);
        return 0;
}

static int on_output(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        input_event(userdata);
        return 0;
}

void p2p_input_set_bus(P2PInput *p, sd_bus *bus) {
        sd_bus_unref(p->bus);
        p->bus = sd_bus_ref(bus);
}

static int on_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        P2PInput *p = userdata;

        log_warning("Dropping a peer-to-peer client (uid %u): a message was not complete after %u s "
                    "(%zu of %zu bytes).", (unsigned) p->uid,
                    (unsigned) (P2P_MESSAGE_TIMEOUT_USEC / 1000000), p->have, p->size);
        drop(p, true);
        return 0;
}

void p2p_input_wake(Manager *m) {
        P2PInput *p, *n;

        if (m->p2p_input_waking)
                return;
        m->p2p_input_waking = true;
        LIST_FOREACH_SAFE(waiting, p, n, m->p2p_input_waiting) {
                if (m->p2p_input_total + p->size > P2P_INPUT_TOTAL_MAX)
                        continue;
                (void) sd_event_source_set_enabled(p->in_source, SD_EVENT_ON);
                input_run(p); /* takes its share, or drops the connection; never frees p */
        }
        m->p2p_input_waking = false;
}

int p2p_input_new(Manager *m, int socket_fd, uid_t uid, int *ret_bus_fd, P2PInput **ret) {
        _cleanup_close_pair_ int pair[2] = { -EBADF, -EBADF };
        P2PInput *p;
        int r;

        p = calloc(1, sizeof(P2PInput));
        if (!p)
                return -ENOMEM;
        *p = (P2PInput) { .manager = m, .uid = uid, .fd = -EBADF, .pair_fd = -EBADF,
                          .check_auth = socket_family(socket_fd) == AF_UNIX };

        /* A duplicate: sd-event watches each fd once, and sd-bus watches socket_fd for writing. */
        p->fd = fcntl(socket_fd, F_DUPFD_CLOEXEC, 3);
        if (p->fd < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_io(m->event, &p->in_source, p->fd, EPOLLIN, on_input, p);
        if (r < 0)
                goto fail;
        r = sd_event_add_io(m->event, &p->out_source, pair[0], EPOLLOUT, on_output, p);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(p->out_source, SD_EVENT_OFF);
        r = sd_event_add_time(m->event, &p->timer, CLOCK_MONOTONIC, 0, 100 * 1000, on_timer, p);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);

        p->pair_fd = TAKE_FD(pair[0]);
        *ret_bus_fd = TAKE_FD(pair[1]);
        *ret = p;
        return 0;
fail:
        p2p_input_free(p);
        return r;
}

P2PInput *p2p_input_free(P2PInput *p) {
        if (!p)
                return NULL;
        close_fds(p);
        release(p);
        sd_event_source_disable_unref(p->in_source);
        sd_event_source_disable_unref(p->out_source);
        sd_event_source_disable_unref(p->timer);
        safe_close(p->fd);
        safe_close(p->pair_fd);
        sd_bus_unref(p->bus);
        free(p->buf);
        free(p->stash);
        free(p);
        return NULL;
}
