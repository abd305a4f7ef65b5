/* Small helpers shared by every asg program: clocks, bounded strings,
 * validation of ids and addresses, logging. */
#ifndef ASG_UTIL_H
#define ASG_UTIL_H

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ASG_VERSION "0.1.0"

/* Exit code of a role that must not be restarted (bad config, cannot bind):
 * the supervisor stops the manager instead of looping. */
#define ASG_EXIT_FATAL 2

/* Milliseconds on CLOCK_MONOTONIC: system-wide, so every process of the
 * manager can compare the times stored in the shared table. */
int64_t now_ms(void);
/* Microseconds on CLOCK_MONOTONIC, for round trips. */
int64_t now_us(void);
/* Milliseconds since the Unix epoch, for humans and wire messages. */
int64_t wall_ms(void);

/* Copies at most size-1 bytes and always terminates; returns false when
 * src did not fit. */
bool copy_str(char *dst, size_t size, const char *src);
/* An array of items of size bytes, n of them used, with room for *cap: made
 * room for one more (doubling, from 16). Returns the array, perhaps moved;
 * aborts when memory is out, as every allocation of ours does. */
void *array_room(void *items, size_t n, size_t *cap, size_t size);

/* A whole number lo..hi, the whole string and nothing else. */
bool parse_whole(const char *s, long lo, long hi, long *out);

/* An instance id: 1..63 of [A-Za-z0-9._-], starting with an alphanumeric. */
bool valid_instance_id(const char *id, size_t len);
/* "host:port" with an IPv4 dotted quad or a DNS-style host name and a
 * port 1..65535 (0 allowed when allow_port0). Writes why into err. */
bool valid_address(const char *addr, size_t len, bool allow_port0,
                   char *err, size_t errsize);

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Who is speaking: "asgd", "monitor", "controller", "agent", ... */
void log_set_role(const char *role);
void log_use_syslog(bool on);
void log_set_level(enum log_level lvl);
/* The syslog facility (LOG_DAEMON, LOG_LOCAL0, ...) of lines sent to
 * syslog; asgd takes it from supervisor.log_facility. */
void log_set_facility(int facility);
/* Whether stderr is systemd's journal (JOURNAL_STREAM names it): then each
 * line carries its syslog priority as a "<N>" prefix. */
bool log_stderr_is_journal(void);
void log_msg(enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

/* A log line that a stranger can provoke (a refused registration, a bad
 * datagram) goes through one of these: at most LOG_LIMIT_PER_S lines a
 * second, then one line saying how many were left out. */
#define LOG_LIMIT_PER_S 5
struct log_limit {
    int64_t window_ms;
    unsigned lines;
    uint64_t suppressed;
};
void log_limited(struct log_limit *l, enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same limit for a line logged another way (with an event, say):
 * true when it may be logged now, counted as one of the second's. */
bool log_limit_take(struct log_limit *l, enum log_level lvl);

/* Sleeps ms milliseconds, whatever signals arrive meanwhile. */
void sleep_ms(int ms);

/* Signals: handlers only set these flags and poke the self-pipe. */
struct sigflags {
    volatile sig_atomic_t hup, term, chld;
};
extern struct sigflags g_sig;
/* Installs handlers for SIGHUP, SIGTERM, SIGINT, SIGCHLD (as asked) and a
 * non-blocking close-on-exec self-pipe; returns its read end or -1. */
int signals_install(bool want_chld);
/* In a forked child: a self-pipe of its own, not the parent's. */
void signals_reset_pipe(void);
/* Empties the self-pipe. */
void signals_drain_pipe(void);
/* In a role of asgd, before signals_install: SIGINT is ignored. A ^C at
 * a terminal reaches every process of its group; the supervisor alone
 * acts on it, marks the drain, then tells each role to stop, so that the
 * controller knows to stop its agents rather than leave them. */
void signals_leave_interrupt(void);
/* Restores default dispositions (in a forked child before exec). */
void signals_reset_defaults(void);

/* The accept queue of this uid's listening TCP socket(s) on port (IPv4 or
 * IPv6), asked of the kernel (sock_diag, listening sockets only):
 * connections it completed that nobody has accepted yet. With several such
 * sockets, the shortest queue. -1 when there is none. */
long tcp_accept_queue(int port);
/* A plaintext service on loopback is only as trustworthy as whoever holds
 * its port: 0 when TCP port has a listener (any local address, IPv4 or
 * IPv6) and every listener on it is root's or ours. -1 with the reason in
 * why otherwise, failing closed: a listener of another uid (named), no
 * listener at all (whoever binds it next would be believed), or a kernel
 * that could not be asked. */
int tcp_port_trusted(int port, char *why, size_t n);

/* Renames the process as seen by ps (argv area and comm). */
void set_proc_title(int argc, char **argv, const char *title);

#endif
