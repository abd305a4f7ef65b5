/* Files that hold secrets (keys, tokens, the group's nonce) and the
 * directory they live in: read and written so that no other local user can
 * plant, swap or read them. */
#define _GNU_SOURCE
#include "secret.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A directory of ours, mode 0700 (made so if missing; parents 0755). */
int secret_own_dir(const char *dir, char *err, size_t errsize)
{
    char path[256];
    if (!copy_str(path, sizeof path, dir) || path[0] != '/') {
        snprintf(err, errsize, "%s: the TLS directory must be an absolute path", dir);
        return -1;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errsize, "%s: cannot create: %s", path, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errsize, "%s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) != 0) {
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errsize, "%s: not a directory (a link or a file is refused)", path);
        return -1;
    }
    if (st.st_uid != geteuid()) {
        snprintf(err, errsize, "%s: owned by uid %u, not by us (uid %u): refusing keys there",
                 path, (unsigned)st.st_uid, (unsigned)geteuid());
        return -1;
    }
    if (st.st_mode & 077) {
        snprintf(err, errsize, "%s: mode %04o lets others in; it must be 0700", path,
                 (unsigned)(st.st_mode & 07777));
        return -1;
    }
    return 0;
}

char *secret_read(const char *path, size_t max, char *err, size_t errsize)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, errsize, "%s: %s", path,
                 errno == ELOOP ? "is a symbolic link, refused" : strerror(errno));
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errsize, "%s: not a regular file", path);
    } else if (st.st_uid != geteuid() && st.st_uid != 0) {
        snprintf(err, errsize, "%s: owned by uid %u, neither root nor us (uid %u): refused", path,
                 (unsigned)st.st_uid, (unsigned)geteuid());
    } else if (st.st_mode & 077) {
        snprintf(err, errsize, "%s: mode %04o lets other users read or change it: refused (chmod 600)",
                 path, (unsigned)(st.st_mode & 07777));
    } else if ((size_t)st.st_size > max || st.st_size == 0) {
        snprintf(err, errsize, "%s: size %lld is not 1..%zu bytes", path, (long long)st.st_size, max);
    } else if ((buf = malloc((size_t)st.st_size + 1)) != NULL) {
        ssize_t got = 0, n;
        while (got < st.st_size && ((n = read(fd, buf + got, (size_t)(st.st_size - got))) > 0 ||
                                    (n < 0 && errno == EINTR)))
            got += n > 0 ? n : 0;
        buf[got] = '\0';
        if (got != st.st_size) {
            snprintf(err, errsize, "%s: short read", path);
            free(buf);
            buf = NULL;
        }
    }
    close(fd);
    return buf;
}

int secret_read_token(const char *spec, char *out, size_t size, char *err, size_t errsize)
{
    out[0] = '\0';
    if (strncmp(spec, "env:", 4) == 0) {
        const char *v = getenv(spec + 4);
        if (!v || !*v) {
            snprintf(err, errsize, "%s: the variable is not set", spec + 4);
            return -1;
        }
        if (!copy_str(out, size, v)) {
            snprintf(err, errsize, "%s: longer than %zu characters", spec + 4, size - 1);
            return -1;
        }
        return 0;
    }
    if (strncmp(spec, "file:", 5) != 0) {
        snprintf(err, errsize, "'%.60s' is neither env:VARIABLE nor file:/path", spec);
        return -1;
    }
    char *text = secret_read(spec + 5, 4096, err, errsize);
    if (!text)
        return -1;
    size_t n = strcspn(text, "\r\n");
    int rc = 0;
    if (n == 0) {
        snprintf(err, errsize, "%s: the first line is empty", spec + 5);
        rc = -1;
    } else if (n >= size) {
        snprintf(err, errsize, "%s: the token is longer than %zu characters", spec + 5, size - 1);
        rc = -1;
    } else {
        memcpy(out, text, n);
        out[n] = '\0';
    }
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    return rc;
}

int secret_write(const char *path, const char *data, size_t len, char *err, size_t errsize)
{
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errsize, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errsize, "%s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return -1;
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
