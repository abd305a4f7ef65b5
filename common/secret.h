/* Files that hold secrets and the directory they live in (common/secret.c). */
#ifndef ASG_SECRET_H
#define ASG_SECRET_H

#include <stddef.h>

/* The state directory (or any directory for secrets): made if missing
 * (parents 0755), then it must be a directory of ours, mode 0700, not a
 * link. 0, or -1 with "path: reason". */
int secret_own_dir(const char *dir, char *err, size_t errsize);

/* Reads a file that must be a regular file of root's or ours, no link,
 * with no group or other permission bits, at most max bytes; malloc'd and
 * NUL-terminated. Every secret is read this way. */
char *secret_read(const char *path, size_t max, char *err, size_t errsize);
/* A token given as "env:VARIABLE" or "file:/path" (status.token): the
 * variable's value, or the file's first line, the file read as a secret
 * (above). 0 with the token in out, or -1 with the reason in err. */
int secret_read_token(const char *spec, char *out, size_t size, char *err, size_t errsize);
/* Writes a file atomically (temp + rename), mode 0600, refusing links. */
int secret_write(const char *path, const char *data, size_t len, char *err, size_t errsize);

#endif
