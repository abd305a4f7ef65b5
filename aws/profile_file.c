#define _GNU_SOURCE
#include "profile_file.h"
#include "../common/strbuf.h"
#include "../common/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILE_BYTES (1 << 20)  /* a credentials file is a few lines */
#define MAX_LINE_BYTES (64 << 10) /* session tokens run to a few KiB */
#define FIRST_CHUNK 4096          /* inih's first read of a line: whole headers */

/* The keys botocore takes from a profile. aws_security_token is the older
 * name of aws_session_token and wins when both are given, as in botocore. */
enum key { K_ACCESS, K_SECRET, K_SECURITY_TOKEN, K_SESSION_TOKEN, K_COUNT };
static const char *const key_names[K_COUNT] = {
    "aws_access_key_id", "aws_secret_access_key", "aws_security_token", "aws_session_token"};

struct parse {
    FILE *f;
    enum aws_file_kind kind;
    const char *profile;
    /* what the line reader saw of the line being parsed */
    int line;
    bool line_ended;  /* the last chunk ended its line */
    size_t line_len;
    bool continuation; /* an indented line continuing the previous value */
    bool after_key;    /* a key = value since the last header (inih's rule) */
    int headers;
    struct strbuf sections; /* "\nname\n..." of the headers seen */
    struct strbuf options;  /* "\nkey\n..." of the current section */
    char section[128];      /* the current one, for messages */
    char found_in[128];     /* the profile's section */
    bool in_profile, found;
    char *val[K_COUNT];
    int val_line[K_COUNT];
    int err_line;
    char why[200];
};

/* Process-wide because libinih's settings are; asg has no other INI
 * reader, so they are set once, before the first parse. */
static pthread_once_t inih_once = PTHREAD_ONCE_INIT;
static void configure_inih(void)
{
    ini_allow_inline_comments = false; /* configparser: `a = b ; c` is "b ; c" */
    ini_allow_multiline = true;        /* indented lines continue a value */
    ini_allow_bom = false;             /* botocore reads a BOM as text, and fails */
    ini_allow_no_value = false;
    ini_stop_on_first_error = true;
    ini_use_stack = false;             /* a heap line that grows: long tokens */
    ini_allow_realloc = true;
    ini_initial_alloc = FIRST_CHUNK;
    ini_max_line = MAX_LINE_BYTES;
}

static int fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parse *p, const char *fmt, ...)
{
    if (p->err_line)
        return 0;
    p->err_line = p->line > 0 ? p->line : 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why, sizeof p->why, fmt, ap);
    va_end(ap);
    return 0;
}

static int key_of(const char *name)
{
    for (int k = 0; k < K_COUNT; k++)
        if (strcasecmp(name, key_names[k]) == 0)
            return k;
    return -1;
}

static void forget_values(struct parse *p)
{
    for (int k = 0; k < K_COUNT; k++) {
        if (p->val[k]) {
            explicit_bzero(p->val[k], strlen(p->val[k]));
            free(p->val[k]);
        }
        p->val[k] = NULL;
        p->val_line[k] = 0;
    }
}

/* "\nname\n" inside a list built as "\n" name "\n" name "\n"... */
static bool listed(const struct strbuf *list, const char *name)
{
    if (!list->s)
        return false;
    size_t n = strlen(name);
    for (const char *s = strstr(list->s, name); s; s = strstr(s + 1, name))
        if (s > list->s && s[-1] == '\n' && s[n] == '\n')
            return true;
    return false;
}

static void list_add(struct strbuf *list, const char *name)
{
    if (list->len == 0)
        sb_add(list, "\n", 1);
    sb_printf(list, "%s\n", name);
}

/* The second of exactly two words of s split as Python's shlex.split
 * splits (quotes, backslashes), which is how botocore reads
 * `[profile "my name"]`. False for any other count, or a dangling quote. */
static bool second_word(const char *s, char *out, size_t size)
{
    int words = 0;
    bool in_word = false;
    char quote = 0;
    size_t len = 0;
    out[0] = '\0';
    for (; *s; s++) {
        char ch = *s;
        if (!quote && isspace((unsigned char)ch)) {
            words += in_word;
            in_word = false;
            continue;
        }
        in_word = true;
        if (quote && ch == quote) {
            quote = 0;
            continue;
        }
        if (!quote && (ch == '\'' || ch == '"')) {
            quote = ch;
            continue;
        }
        if (ch == '\\' && quote != '\'') {
            if (!s[1])
                return false;
            if (!quote || s[1] == '"' || s[1] == '\\')
                ch = *++s; /* else the backslash stays, as in shlex */
        }
        if (words == 1) {
            if (len + 1 >= size)
                return false;
            out[len++] = ch;
            out[len] = '\0';
        }
    }
    return !quote && words + in_word == 2;
}

/* Which profile a section is, botocore's way; false when none. */
static bool profile_of(enum aws_file_kind kind, const char *section, char *out, size_t size)
{
    if (kind == AWS_CREDENTIALS_FILE || strcmp(section, "default") == 0) {
        copy_str(out, size, section);
        return strlen(section) < size;
    }
    return strncmp(section, "profile", 7) == 0 && second_word(section, out, size);
}

/* A [section] line (inih does the same test): its name must be new. */
static void on_header(struct parse *p, const char *t)
{
    const char *end = strchr(t + 1, ']');
    if (!end)
        return; /* inih reports the line */
    size_t n = (size_t)(end - t - 1);
    char name[512];
    if (n == 0 || n >= sizeof name) {
        fail(p, n ? "a section name longer than %zu characters" : "an empty section name []",
             sizeof name - 1);
        return;
    }
    memcpy(name, t + 1, n);
    name[n] = '\0';
    if (listed(&p->sections, name)) {
        fail(p, "section [%.64s] given twice", name);
        return;
    }
    list_add(&p->sections, name);
    p->headers++;
    p->after_key = false;
    p->options.len = 0;
    if (p->options.s)
        p->options.s[0] = '\0';
    snprintf(p->section, sizeof p->section, "%.*s", (int)sizeof p->section - 1, name);
    char prof[256];
    p->in_profile = profile_of(p->kind, name, prof, sizeof prof) && strcmp(prof, p->profile) == 0;
    if (p->in_profile) {
        forget_values(p); /* botocore: the later section of a profile wins */
        p->found = true;
        memcpy(p->found_in, p->section, sizeof p->found_in);
    }
}

/* What kind of line begins with this chunk, judged as inih judges it
 * (comments first, then continuation, then headers). */
static void on_line_start(struct parse *p, const char *chunk)
{
    const char *t = chunk;
    while (*t && isspace((unsigned char)*t))
        t++;
    bool blank = *t == '\0', comment = *t == ';' || *t == '#';
    p->continuation = !blank && !comment && t > chunk && p->after_key;
    if (!blank && !comment && !p->continuation && *t == '[')
        on_header(p, t);
}

static char *read_line(char *str, int num, void *stream)
{
    struct parse *p = stream;
    if (p->err_line || !fgets(str, num, p->f))
        return NULL;
    size_t n = strlen(str);
    if (p->line_ended) {
        p->line++;
        p->line_len = 0;
        on_line_start(p, str);
    }
    p->line_ended = n > 0 && str[n - 1] == '\n';
    p->line_len += n;
    if (p->line_len >= MAX_LINE_BYTES)
        fail(p, "a line longer than %d bytes", MAX_LINE_BYTES - 1);
    return p->err_line ? NULL : str;
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    (void)section; /* inih cuts it at 49 bytes: the reader keeps the whole name */
    struct parse *p = user;
    int k = key_of(name);
    if (p->continuation) {
        if (p->in_profile && k >= 0)
            return fail(p, "%s in [%.64s] goes on over an indented line", key_names[k], p->section);
        return 1;
    }
    p->after_key = true;
    if (p->headers == 0)
        return fail(p, "a key before the first [section]");
    if (!name[0])
        return fail(p, "a value without a key");
    char lower[64];
    size_t n = strlen(name);
    if (n >= sizeof lower)
        n = sizeof lower - 1; /* inih has cut it shorter already */
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    lower[n] = '\0';
    if (listed(&p->options, lower))
        /* Only our own key names are shown: a stray secret may stand where a key should. */
        return fail(p, "%s given twice in [%.64s]", k >= 0 ? key_names[k] : "a key", p->section);
    list_add(&p->options, lower);
    if (p->in_profile && k >= 0) {
        p->val[k] = strdup(value);
        p->val_line[k] = p->line;
        if (!p->val[k])
            return fail(p, "out of memory");
    }
    return 1;
}

static FILE *open_regular(const char *path, char *err, size_t errsize, int *missing)
{
    *missing = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (fd < 0) {
        *missing = errno == ENOENT || errno == ENOTDIR;
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        return NULL;
    }
    const char *why = NULL;
    if (fstat(fd, &st) != 0)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (st.st_size > MAX_FILE_BYTES)
        why = "larger than 1 MiB";
    FILE *f = why ? NULL : fdopen(fd, "r");
    if (!f) {
        snprintf(err, errsize, "%s: %s", path, why ? why : strerror(errno));
        close(fd);
    }
    return f;
}

/* The profile's values, once the whole file parsed cleanly. */
static int take_values(struct parse *p, const char *path, struct aws_creds *c, char *err,
                       size_t errsize)
{
    if (!p->found || !p->val[K_ACCESS])
        return 1;
    if (!p->val[K_SECRET]) {
        snprintf(err, errsize, "%s:%d: [%.64s] has aws_access_key_id, but "
                 "aws_secret_access_key is missing", path, p->val_line[K_ACCESS], p->found_in);
        return -1;
    }
    enum key tok = p->val[K_SECURITY_TOKEN] ? K_SECURITY_TOKEN : K_SESSION_TOKEN;
    struct { enum key k; size_t size; } fields[] = {
        {K_ACCESS, sizeof c->access_key}, {K_SECRET, sizeof c->secret_key}, {tok, sizeof c->token}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        enum key k = fields[i].k;
        if (!p->val[k])
            continue;
        if (k != tok && !p->val[k][0]) {
            snprintf(err, errsize, "%s:%d: %s is empty", path, p->val_line[k], key_names[k]);
            return -1;
        }
        if (strlen(p->val[k]) >= fields[i].size) {
            snprintf(err, errsize, "%s:%d: %s is longer than %zu characters", path,
                     p->val_line[k], key_names[k], fields[i].size - 1);
            return -1;
        }
    }
    copy_str(c->access_key, sizeof c->access_key, p->val[K_ACCESS]);
    copy_str(c->secret_key, sizeof c->secret_key, p->val[K_SECRET]);
    copy_str(c->token, sizeof c->token, p->val[tok] ? p->val[tok] : "");
    return 0;
}

int aws_profile_read(const char *path, enum aws_file_kind kind, const char *profile,
                     struct aws_creds *c, char *err, size_t errsize)
{
    err[0] = '\0';
    int missing;
    FILE *f = open_regular(path, err, errsize, &missing);
    if (!f) {
        if (missing)
            err[0] = '\0';
        return missing ? 1 : -1;
    }
    pthread_once(&inih_once, configure_inih);
    struct parse p = {.f = f, .kind = kind, .profile = profile, .line_ended = true};
    int at = ini_parse_stream(read_line, &p, on_pair, &p);
    fclose(f);
    int rc;
    if (p.err_line) {
        snprintf(err, errsize, "%s:%d: %s", path, p.err_line, p.why);
        rc = -1;
    } else if (at > 0) {
        snprintf(err, errsize, "%s:%d: neither a [section], a comment, nor a key = value", path, at);
        rc = -1;
    } else if (at < 0) {
        snprintf(err, errsize, "%s: out of memory", path);
        rc = -1;
    } else {
        rc = take_values(&p, path, c, err, errsize);
    }
    forget_values(&p);
    sb_free(&p.sections);
    sb_free(&p.options);
    return rc;
}
