/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests of RunText's text: invalid UTF-8 and NUL become U+FFFD, the length bound cuts at a
 * character. Links libsandboxd-core, without a bus. */
#include <stdlib.h>
#include <string.h>

#include "run.h"
#include "tap.h"

static bool text_is(const char *in, size_t len, size_t max, const char *want, bool want_cut) {
        bool cut;
        char *t = utf8_sanitize(in, len, max, &cut);
        bool ok = t && streq(t, want) && cut == want_cut;

        free(t);
        return ok;
}

#define R "\xef\xbf\xbd" /* U+FFFD */

int main(void) {
        CHECK(text_is("", 0, 100, "", false));
        CHECK(text_is("hello\n", 6, 100, "hello\n", false));
        CHECK(text_is("\xc3\xa9t\xc3\xa9", 5, 100, "\xc3\xa9t\xc3\xa9", false));
        CHECK(text_is("\xf0\x9f\x98\x80", 4, 100, "\xf0\x9f\x98\x80", false));      /* U+1F600 */
        CHECK(text_is("a\0b", 3, 100, "a" R "b", false));                          /* NUL */
        CHECK(text_is("\xff", 1, 100, R, false));
        CHECK(text_is("\xc3", 1, 100, R, false));                                  /* cut short */
        CHECK(text_is("\xc3(", 2, 100, R "(", false));                             /* bad continuation */
        CHECK(text_is("\xc0\xaf", 2, 100, R R, false));                            /* overlong '/' */
        CHECK(text_is("\xe0\x80\xaf", 3, 100, R R R, false));                      /* overlong */
        CHECK(text_is("\xed\xa0\x80", 3, 100, R R R, false));                      /* surrogate */
        CHECK(text_is("\xf4\x90\x80\x80", 4, 100, R R R R, false));                /* > U+10FFFF */
        CHECK(text_is("\xef\xbf\xbd", 3, 100, R, false));                          /* U+FFFD itself */
        /* the bound: never half a character */
        CHECK(text_is("abcdef", 6, 4, "abcd", true));
        CHECK(text_is("ab\xc3\xa9", 4, 3, "ab", true));
        CHECK(text_is("a\xff", 2, 3, "a", true));
        CHECK(text_is("a\xff", 2, 4, "a" R, false));
        CHECK(text_is("abc", 3, 3, "abc", false));
        CHECK(text_is("abc", 3, 0, "", true));
        return tap_done();
}
