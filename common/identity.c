/* The group's nonce and its table's name, in the state directory. */
#define _GNU_SOURCE
#include "identity.h"
#include "secret.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static int random_hex(char *out, size_t nbytes)
{
    unsigned char b[32];
    if (nbytes > sizeof b)
        return -1;
    size_t got = 0;
    while (got < nbytes) {
        ssize_t n = getrandom(b + got, nbytes - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    for (size_t i = 0; i < nbytes; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return 0;
}

static bool all_hex(const char *s, size_t n)
{
    return strspn(s, "0123456789abcdef") >= n;
}

/* Makes path with content, 0600, only if it does not exist: written to a
 * temporary name and linked, so a reader never sees it half-written and two
 * makers cannot both win (link fails with EEXIST). 0 made, 1 already
 * there, -1 error. */
static int create_once(const char *path, const char *content, char *err, size_t errsize)
{
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.%d.new", path, (int)getpid());
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errsize, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t len = strlen(content);
    bool ok = write(fd, content, len) == (ssize_t)len && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    int rc = -1;
    if (!ok)
        snprintf(err, errsize, "%s: %s", tmp, strerror(errno));
    else if (link(tmp, path) == 0)
        rc = 0;
    else if (errno == EEXIST)
        rc = 1;
    else
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
    unlink(tmp);
    return rc;
}

int group_nonce_load(const char *dir, bool create, char out[GROUP_NONCE_HEX + 1],
                     char *err, size_t errsize)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, GROUP_NONCE_FILE);
    if (create && access(path, F_OK) != 0) {
        char fresh[GROUP_NONCE_HEX + 2];
        if (random_hex(fresh, GROUP_NONCE_HEX / 2) != 0) {
            snprintf(err, errsize, "cannot make the group nonce: getrandom: %s", strerror(errno));
            return -1;
        }
        strcat(fresh, "\n");
        int made = create_once(path, fresh, err, errsize);
        if (made < 0)
            return -1;
        if (made == 0)
            log_info("made the group's nonce in %s", path);
    }
    char *text = secret_read(path, 256, err, errsize);
    if (!text) {
        if (access(path, F_OK) != 0)
            errno = ENOENT;
        return -1;
    }
    int rc = 0;
    if (strlen(text) < GROUP_NONCE_HEX || !all_hex(text, GROUP_NONCE_HEX) ||
        (text[GROUP_NONCE_HEX] && text[GROUP_NONCE_HEX] != '\n')) {
        snprintf(err, errsize, "%s: not %d lower-case hex digits", path, GROUP_NONCE_HEX);
        errno = EINVAL;
        rc = -1;
    } else {
        memcpy(out, text, GROUP_NONCE_HEX);
        out[GROUP_NONCE_HEX] = '\0';
    }
    explicit_bzero(text, strlen(text));
    free(text);
    return rc;
}

static void record_path(const char *dir, const char *shm_name, char *out, size_t size)
{
    snprintf(out, size, "%s/table-%s", dir, shm_name[0] == '/' ? shm_name + 1 : shm_name);
}

/* name must be shm_name "." 16 hex digits. */
static bool name_of(const char *shm_name, const char *name)
{
    size_t n = strlen(shm_name);
    return strncmp(name, shm_name, n) == 0 && name[n] == '.' && strlen(name + n + 1) == 16 &&
           all_hex(name + n + 1, 16);
}

int table_name_recorded(const char *dir, const char *shm_name, char *out, size_t size,
                        char *err, size_t errsize)
{
    char path[400];
    record_path(dir, shm_name, path, sizeof path);
    if (access(path, F_OK) != 0) {
        int e = errno;
        snprintf(err, errsize, "no table recorded for shm.name %s in %s (%s): is asgd running "
                 "with this config, and are you its user?", shm_name, dir, strerror(e));
        errno = e;
        return -1;
    }
    char *text = secret_read(path, TABLE_NAME_MAX + 2, err, errsize);
    if (!text) {
        errno = EINVAL;
        return -1;
    }
    text[strcspn(text, "\n")] = '\0';
    int rc = 0;
    if (!name_of(shm_name, text) || !copy_str(out, size, text)) {
        snprintf(err, errsize, "%s: '%.80s' is not %s followed by '.' and 16 hex digits", path,
                 text, shm_name);
        errno = EINVAL;
        rc = -1;
    }
    free(text);
    return rc;
}

int table_name_record(const char *dir, const char *shm_name, const char *name,
                      char *err, size_t errsize)
{
    char path[400], line[TABLE_NAME_MAX + 2];
    record_path(dir, shm_name, path, sizeof path);
    if (!name) {
        if (unlink(path) != 0 && errno != ENOENT) {
            snprintf(err, errsize, "%s: %s", path, strerror(errno));
            return -1;
        }
        return 0;
    }
    int n = snprintf(line, sizeof line, "%s\n", name);
    return secret_write(path, line, (size_t)n, err, errsize);
}

int table_name_fresh(const char *shm_name, char *out, size_t size)
{
    char hex[17];
    if (random_hex(hex, 8) != 0)
        return -1;
    int n = snprintf(out, size, "%s.%s", shm_name, hex);
    return n > 0 && (size_t)n < size ? 0 : -1;
}
