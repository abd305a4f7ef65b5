/* Processes as /proc tells of them: liveness, owner, program, start time. */
#define _GNU_SOURCE
#include "proc.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool read_stat(pid_t pid, char *state, uint64_t *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    /* comm may contain spaces and parentheses: skip to the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return false;
    *state = p[2];
    /* Fields after comm: state is field 3, starttime is field 22. */
    p += 2;
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    *start = p ? strtoull(p, NULL, 10) : 0;
    return true;
}

bool pid_alive(pid_t pid)
{
    char st;
    uint64_t start;
    if (pid <= 0 || !read_stat(pid, &st, &start))
        return false;
    return st != 'Z' && st != 'X';
}

bool pid_exe_if_ours(pid_t pid, char *exe, size_t size)
{
    char path[64];
    struct stat st;
    snprintf(path, sizeof path, "/proc/%d", (int)pid);
    if (stat(path, &st) != 0 || st.st_uid != geteuid())
        return false;
    snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(path, exe, size - 1);
    if (n <= 0)
        return false;
    exe[n] = '\0';
    return true;
}

uint64_t pid_start_time(pid_t pid)
{
    char st;
    uint64_t start;
    if (pid <= 0 || !read_stat(pid, &st, &start) || st == 'Z' || st == 'X')
        return 0;
    return start;
}
