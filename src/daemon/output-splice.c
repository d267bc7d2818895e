/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Output signals written on a peer-to-peer unix socket by hand, their bytes spliced from the pipe.
 *
 * Relayed through sd-bus, each byte of a fast command's output is copied three times in the daemon:
 * out of the pipe, into the message, into the socket. Here the pipe's pages go to the socket as
 * they are: the daemon writes a signal's header and lets the kernel move the data behind it.
 *
 * This writes on sd-bus's connection behind its back, so it keeps to what keeps the stream whole:
 *   - only while sd-bus has nothing queued, so that no message of its own is half written;
 *   - only when the socket has room for the whole message, so that ours is never half written
 *     either (a unix socket's send buffer is the whole of its flow control; vsock has credit from
 *     the peer, which cannot be checked beforehand, so vsock connections always go through sd-bus);
 *   - with serial numbers of its own, in the upper half of the 32-bit space that sd-bus counts up
 *     from 1: nobody replies to a signal, and a serial only has to tell replies apart. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"
#include "listen.h"
#include "log.h"
#include "output-splice.h"
#include "session.h"

#define SERIAL_FIRST 0x80000000U
/* A message never takes more than this much of the send buffer beyond its size: the kernel's
 * accounting of the pages and buffers that carry it. */
#define SEND_OVERHEAD(size) ((size) + 4096)

/* The D-Bus wire format, in the host's byte order. */
typedef struct Marshal {
        uint8_t *buf;
        size_t n;
} Marshal;

static void marshal_pad(Marshal *w, size_t align) {
        while (w->n % align)
                w->buf[w->n++] = 0;
}

static void marshal_u32(Marshal *w, uint32_t v) {
        marshal_pad(w, 4);
        memcpy(w->buf + w->n, &v, sizeof v);
        w->n += sizeof v;
}

/* A header field: a struct (yv) of the field's code and a variant of a string-like type. */
static void marshal_field(Marshal *w, uint8_t code, char type, const char *value) {
        size_t len = strlen(value);

        marshal_pad(w, 8);
        w->buf[w->n++] = code;
        w->buf[w->n++] = 1; /* the variant's signature: one type */
        w->buf[w->n++] = (uint8_t) type;
        w->buf[w->n++] = 0;
        if (type == 'g')
                w->buf[w->n++] = (uint8_t) len;
        else
                marshal_u32(w, (uint32_t) len);
        memcpy(w->buf + w->n, value, len + 1);
        w->n += len + 1;
}

/* Output(u id, u stream, ay data) up to the array's length; the data follows. Returns the size. */
static size_t output_header(uint8_t buf[static OUTPUT_HEADER_MAX], uint32_t serial, uint32_t id,
                            uint32_t stream, uint32_t size) {
        Marshal w = { .buf = buf };
        size_t fields;
        uint32_t fields_size;

        buf[w.n++] = __BYTE_ORDER == __LITTLE_ENDIAN ? 'l' : 'B';
        buf[w.n++] = 4; /* signal */
        buf[w.n++] = 1; /* no reply expected */
        buf[w.n++] = 1; /* protocol version */
        marshal_u32(&w, 3 * sizeof(uint32_t) + size);
        marshal_u32(&w, serial);
        marshal_u32(&w, 0); /* the fields' length, below */
        fields = w.n;
        marshal_field(&w, 1, 'o', SANDBOX_OBJECT_PATH);
        marshal_field(&w, 2, 's', SANDBOX_INTERFACE);
        marshal_field(&w, 3, 's', "Output");
        marshal_field(&w, 8, 'g', "uuay");
        marshal_field(&w, 7, 's', SANDBOX_BUS_NAME); /* as sd-bus writes it, see listen.c */
        fields_size = (uint32_t) (w.n - fields);
        memcpy(buf + fields - sizeof fields_size, &fields_size, sizeof fields_size);
        marshal_pad(&w, 8);
        marshal_u32(&w, id);
        marshal_u32(&w, stream);
        marshal_u32(&w, size);
        return w.n;
}

void client_splice_init(Client *c) {
        /* Not sd_bus_get_fd(): sd-bus reads another fd (p2p-input.c), and then refuses to tell. */
        int fd = c->socket_fd, sndbuf = 0;
        socklen_t len = sizeof sndbuf;

        c->splice_sndbuf = -1;
        c->splice_serial = SERIAL_FIRST;
        if (fd < 0 || socket_family(fd) != AF_UNIX)
                return;
        if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) < 0 || sndbuf <= 0)
                return;
        c->splice_sndbuf = sndbuf;
}

/* The body's bytes, from the pipe to the socket; FIONREAD said the pipe holds them. */
static int move_data(int from, int to, size_t size) {
        while (size > 0) {
                ssize_t k = splice(from, NULL, to, NULL, size, SPLICE_F_NONBLOCK);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -EIO;
                size -= (size_t) k;
        }
        return 0;
}

bool output_splice_possible(Session *s) {
        /* Not where the bytes are counted against max-output, or collected for Run. */
        return s->owner && s->owner->splice_sndbuf > 0 && !s->tty && !s->run && !s->max_output_set;
}

size_t output_splice(Session *s, unsigned stream, size_t max) {
        OutputStream *o = &s->out[stream];
        Client *c = s->owner;
        uint8_t header[OUTPUT_HEADER_MAX];
        size_t size, header_size;
        ssize_t sent;
        int fd, avail = 0, queued = 0, r;
        uint64_t n_queued;

        if (!output_splice_possible(s) || !o->grown)
                return 0;
        if (sd_bus_get_n_queued_write(c->bus, &n_queued) < 0 || n_queued > 0)
                return 0;
        if (ioctl(o->fd, FIONREAD, &avail) < 0 || avail <= 0)
                return 0; /* empty or at its end: the read path tells which */
        fd = c->socket_fd;
        size = MIN((size_t) avail, max);
        if (fd < 0 || ioctl(fd, SIOCOUTQ, &queued) < 0 || queued < 0 ||
            (size_t) queued + SEND_OVERHEAD(2 * size) > (size_t) c->splice_sndbuf)
                return 0;

        header_size = output_header(header, c->splice_serial, s->id, stream + 1, (uint32_t) size);
        c->splice_serial = c->splice_serial == UINT32_MAX ? SERIAL_FIRST : c->splice_serial + 1;
        /* A nonblocking send that has room neither sleeps nor stops halfway. */
        sent = send(fd, header, header_size, MSG_DONTWAIT | MSG_NOSIGNAL);
        r = sent == (ssize_t) header_size ? 0 : sent < 0 ? -errno : -EIO;
        if (r >= 0)
                r = move_data(o->fd, fd, size);
        if (r < 0) {
                /* Part of a message may be on the wire: nothing can follow it. The connection ends, and
                 * sd-bus reports it as any other disconnect. */
                log_debug_errno(r, "Session %u: failed to write Output, dropping the connection: %m",
                                s->id);
                c->splice_sndbuf = -1;
                (void) shutdown(fd, SHUT_RDWR);
        }
        return size;
}
