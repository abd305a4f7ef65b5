/* Processes as /proc tells of them, for whoever must know whether a pid
 * is still the process it was: the table's lock holder, a local agent. */
#ifndef ASG_PROC_H
#define ASG_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* /proc based liveness: false for a missing or zombie process. */
bool pid_alive(pid_t pid);
/* True when pid belongs to our uid; its program (/proc/PID/exe, what the
 * kernel runs, not the argv it shows) goes to exe. */
bool pid_exe_if_ours(pid_t pid, char *exe, size_t size);
/* Start time of pid in clock ticks since boot (field 22 of stat), 0 if
 * gone. */
uint64_t pid_start_time(pid_t pid);

#endif
