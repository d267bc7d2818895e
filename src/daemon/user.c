/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Resolving the user a session runs as: uid, gid, supplementary groups, passwd fields. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "parse.h"
#include "user.h"

/* Bounds the buffers NSS may ask for, so a broken entry cannot make us allocate without end. */
#define NSS_BUFFER_MAX (1024 * 1024)

static int lookup_passwd(const char *name, uid_t uid, struct passwd *pw, char **buf) {
        size_t size = 4096;

        for (;;) {
                struct passwd *res = NULL;
                int r;

                free(*buf);
                *buf = malloc(size);
                if (!*buf)
                        return -ENOMEM;
                r = name ? getpwnam_r(name, pw, *buf, size, &res)
                         : getpwuid_r(uid, pw, *buf, size, &res);
                if (r == ERANGE && size < NSS_BUFFER_MAX) {
                        size *= 2;
                        continue;
                }
                if (r != 0)
                        return -r;
                return res ? 0 : -ESRCH;
        }
}

static int lookup_group(const char *spec, gid_t *ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 4096;
        uint32_t gid;

        if (parse_uid(spec, &gid) >= 0) {
                /* A number is taken as given, whether or not the group database knows it. */
                *ret = gid;
                return 0;
        }
        for (;;) {
                struct group gr, *res = NULL;
                int r;

                free(buf);
                buf = malloc(size);
                if (!buf)
                        return -ENOMEM;
                r = getgrnam_r(spec, &gr, buf, size, &res);
                if (r == ERANGE && size < NSS_BUFFER_MAX) {
                        size *= 2;
                        continue;
                }
                if (r != 0)
                        return -r;
                if (!res)
                        return -ESRCH;
                *ret = gr.gr_gid;
                return 0;
        }
}

/* The name of gid, or its number as text when the group database has no entry for it. */
static int group_name(gid_t gid, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 4096;

        for (;;) {
                struct group gr, *res = NULL;
                int r;

                free(buf);
                buf = malloc(size);
                if (!buf)
                        return -ENOMEM;
                r = getgrgid_r(gid, &gr, buf, size, &res);
                if (r == ERANGE && size < NSS_BUFFER_MAX) {
                        size *= 2;
                        continue;
                }
                if (r == 0 && res)
                        *ret = strdup(gr.gr_name);
                else if (asprintf(ret, "%u", (unsigned) gid) < 0)
                        *ret = NULL;
                return *ret ? 0 : -ENOMEM;
        }
}

static int user_groups(const char *name, gid_t gid, gid_t **ret, size_t *ret_n) {
        int n = 64;

        for (;;) {
                _cleanup_free_ gid_t *l = calloc((size_t) n, sizeof(gid_t));
                int k = n;

                if (!l)
                        return -ENOMEM;
                if (getgrouplist(name, gid, l, &k) >= 0) {
                        *ret = TAKE_PTR(l);
                        *ret_n = (size_t) k;
                        return 0;
                }
                if (k <= n || k > 65536)
                        return -EINVAL;
                n = k;
        }
}

static int user_resolve_uncached(const char *spec, uid_t default_uid, UserInfo *ret) {
        _cleanup_free_ char *uname = NULL, *gname = NULL, *buf = NULL;
        UserInfo u = {};
        struct passwd pw;
        uint32_t uid = default_uid;
        bool by_name = false;
        int r;

        if (spec) {
                r = user_spec_split(spec, &uname, &gname);
                if (r < 0)
                        return r;
                if (parse_uid(uname, &uid) < 0) {
                        if (uname[0] >= '0' && uname[0] <= '9' &&
                            strspn(uname, "0123456789") == strlen(uname))
                                return -EINVAL; /* numeric but out of range */
                        by_name = true;
                }
        }

        r = lookup_passwd(by_name ? uname : NULL, uid, &pw, &buf);
        if (r == -ESRCH && by_name)
                return -ESRCH;
        if (r < 0 && r != -ESRCH)
                return r;

        if (r >= 0) {
                u.known = true;
                u.uid = pw.pw_uid;
                u.gid = pw.pw_gid;
                u.name = strdup(pw.pw_name);
                u.home = strdup(pw.pw_dir && pw.pw_dir[0] == '/' ? pw.pw_dir : "/");
                u.shell = strdup(pw.pw_shell && pw.pw_shell[0] ? pw.pw_shell : "/bin/sh");
        } else {
                /* A bare uid with no passwd entry: its own number as group, no supplementary
                 * groups. */
                u.uid = uid;
                u.gid = uid;
                if (asprintf(&u.name, "%u", uid) < 0)
                        u.name = NULL;
                u.home = strdup("/");
                u.shell = strdup("/bin/sh");
        }
        if (!u.name || !u.home || !u.shell) {
                user_info_done(&u);
                return -ENOMEM;
        }

        /* Without a group the user's own primary group; with one, it is the user's own only if
         * the user is a member: "alice:shadow" gives alice a group she does not have. */
        u.own_group = true;
        if (gname) {
                gid_t primary = u.gid;

                r = lookup_group(gname, &u.gid);
                if (r < 0) {
                        user_info_done(&u);
                        return r;
                }
                if (u.gid != primary) {
                        u.own_group = false;
                        if (u.known) {
                                r = user_groups(u.name, primary, &u.groups, &u.n_groups);
                                if (r < 0) {
                                        user_info_done(&u);
                                        return r;
                                }
                                for (size_t i = 0; i < u.n_groups; i++)
                                        if (u.groups[i] == u.gid)
                                                u.own_group = true;
                                free(u.groups);
                                u.groups = NULL;
                                u.n_groups = 0;
                        }
                }
        }

        if (u.known) {
                r = user_groups(u.name, u.gid, &u.groups, &u.n_groups);
                if (r < 0) {
                        user_info_done(&u);
                        return r;
                }
        }
        r = group_name(u.gid, &u.group);
        if (r < 0) {
                user_info_done(&u);
                return r;
        }

        *ret = u;
        return 0;
}

void user_info_done(UserInfo *u) {
        free(u->name);
        free(u->home);
        free(u->shell);
        free(u->groups);
        free(u->group);
        *u = (UserInfo) {};
}

/* Recent answers, so that a burst of Execs does not read the user and group databases for each
 * one (about a third of the daemon's own time per Exec of a short command). An answer is used
 * only while the files behind the databases are unchanged, so useradd, usermod and friends take
 * effect at once, and for at most CACHE_NSEC, the delay for changes made through other NSS
 * sources (systemd's userdb, LDAP, ...). Failures are not kept. */
#define CACHE_MAX 32
#define CACHE_NSEC (1000ULL * 1000 * 1000)

#define WATCHED_DIR "/etc"
static const char *const watched_files[] = { "/etc/nsswitch.conf", "/etc/passwd", "/etc/group" };

/* Changes to those files come from an inotify watch on their directory: one read() per lookup,
 * which finds nothing to read almost always, instead of a stat() of each file (about 7 us of
 * each Exec's latency, bench/). A file that is a symlink may change where the watch does not
 * see it, so then, and wherever the watch cannot be had, the files are stat()ed instead. */
static int watch_fd = -EBADF;
static enum { WATCH_UNTRIED, WATCH_ON, WATCH_OFF } watch_state = WATCH_UNTRIED;

typedef struct FileStamp {
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime, ctime;
        int error;
} FileStamp;

typedef struct CacheEntry {
        char *spec;
        uid_t default_uid;
        uint64_t when;
        UserInfo info;
} CacheEntry;

static FileStamp stamps[ELEMENTSOF(watched_files)];
static CacheEntry cache[CACHE_MAX];

static uint64_t now_nsec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static bool stamp_equal(const FileStamp *a, const FileStamp *b) {
        return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
               a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
               a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec &&
               a->error == b->error;
}

static void cache_entry_clear(CacheEntry *e) {
        free(e->spec);
        user_info_done(&e->info);
        *e = (CacheEntry) {};
}

static void watch_start(void) {
        struct stat st;

        watch_state = WATCH_OFF;
        for (size_t i = 0; i < ELEMENTSOF(watched_files); i++)
                if (lstat(watched_files[i], &st) >= 0 && S_ISLNK(st.st_mode))
                        return;
        watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (watch_fd < 0)
                return;
        /* Replaced by rename (the shadow tools, editors) or written in place. */
        if (inotify_add_watch(watch_fd, WATCHED_DIR, IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_CREATE |
                              IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR) < 0) {
                watch_fd = safe_close(watch_fd);
                return;
        }
        watch_state = WATCH_ON;
}

static bool watched_name(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(watched_files); i++)
                /* sizeof counts the NUL, as long as the slash after the directory. */
                if (streq(name, watched_files[i] + sizeof(WATCHED_DIR)))
                        return true;
        return false;
}

/* Reads what the watch queued; true if one of the files may have changed. */
static bool watch_changed(void) {
        _Alignas(struct inotify_event) char buf[4096];
        bool changed = false;

        for (;;) {
                ssize_t n = read(watch_fd, buf, sizeof buf);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return changed; /* EAGAIN: nothing (more) queued */
                for (char *p = buf; p < buf + n;) {
                        const struct inotify_event *e = (const struct inotify_event *) p;

                        if (e->mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_UNMOUNT))
                                changed = true;
                        if (e->mask & IN_IGNORED) {
                                /* The directory went away: back to stat(). */
                                watch_fd = safe_close(watch_fd);
                                watch_state = WATCH_OFF;
                                return true;
                        }
                        if (e->len > 0 && watched_name(e->name))
                                changed = true;
                        p += sizeof(struct inotify_event) + e->len;
                }
        }
}

/* Drops every answer if one of the files changed since they were looked up. */
static void cache_check_files(void) {
        bool changed = false;

        if (watch_state == WATCH_UNTRIED)
                watch_start();
        if (watch_state == WATCH_ON) {
                if (watch_changed())
                        user_cache_flush();
                if (watch_state == WATCH_ON)
                        return;
        }

        for (size_t i = 0; i < ELEMENTSOF(watched_files); i++) {
                FileStamp st = {};
                struct stat buf;

                if (stat(watched_files[i], &buf) < 0)
                        st.error = errno;
                else
                        st = (FileStamp) { .dev = buf.st_dev, .ino = buf.st_ino,
                                           .size = buf.st_size, .mtime = buf.st_mtim,
                                           .ctime = buf.st_ctim };
                if (!stamp_equal(&st, &stamps[i])) {
                        stamps[i] = st;
                        changed = true;
                }
        }
        if (changed)
                user_cache_flush();
}

static int user_info_copy(const UserInfo *from, UserInfo *to) {
        UserInfo u = *from;

        u.name = strdup(from->name);
        u.home = strdup(from->home);
        u.shell = strdup(from->shell);
        u.group = strdup(from->group);
        u.groups = from->n_groups > 0 ? malloc(from->n_groups * sizeof(gid_t)) : NULL;
        if (!u.name || !u.home || !u.shell || !u.group || (from->n_groups > 0 && !u.groups)) {
                user_info_done(&u);
                return -ENOMEM;
        }
        if (from->n_groups > 0)
                memcpy(u.groups, from->groups, from->n_groups * sizeof(gid_t));
        *to = u;
        return 0;
}

static bool cache_entry_matches(const CacheEntry *e, const char *spec, uid_t default_uid) {
        /* default_uid is what no spec means; with a spec it plays no part. */
        return spec ? streq_ptr(e->spec, spec) : !e->spec && e->default_uid == default_uid;
}

int user_resolve(const char *spec, uid_t default_uid, UserInfo *ret) {
        uint64_t now = now_nsec();
        CacheEntry *slot = NULL;        /* where a new answer goes: a free entry, else the oldest */
        UserInfo u;
        int r;

        cache_check_files();
        for (size_t i = 0; i < CACHE_MAX; i++) {
                CacheEntry *e = &cache[i];

                if (e->when != 0 && now - e->when >= CACHE_NSEC)
                        cache_entry_clear(e);
                if (e->when == 0) {
                        if (!slot || slot->when != 0)
                                slot = e;
                        continue;
                }
                if (cache_entry_matches(e, spec, default_uid))
                        return user_info_copy(&e->info, ret);
                if (!slot || (slot->when != 0 && e->when < slot->when))
                        slot = e;
        }

        r = user_resolve_uncached(spec, default_uid, &u);
        if (r < 0)
                return r;

        /* Keeping the answer only saves time: without the memory for it, it is not kept. */
        cache_entry_clear(slot);
        slot->spec = spec ? strdup(spec) : NULL;
        if ((!spec || slot->spec) && user_info_copy(&u, &slot->info) >= 0) {
                slot->default_uid = default_uid;
                slot->when = now;
        } else
                cache_entry_clear(slot);
        *ret = u;
        return 0;
}

void user_cache_done(void) {
        user_cache_flush();
        watch_fd = safe_close(watch_fd);
        watch_state = WATCH_UNTRIED;
}

void user_cache_flush(void) {
        for (size_t i = 0; i < CACHE_MAX; i++)
                cache_entry_clear(&cache[i]);
}
