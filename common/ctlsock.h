/* Operator requests to the controller (from the status role's API): fixed
 * size datagrams on an abstract Unix socket named after the table. The
 * receiver checks the length, the fields' ranges and the sender's uid. */
#ifndef ASG_CTLSOCK_H
#define ASG_CTLSOCK_H

#include <stddef.h>
#include <stdint.h>

#define CTL_REQ_MAGIC 0x41534752u /* "ASGR" */

enum ctl_req_kind { REQ_SET_DESIRED = 1, REQ_LAUNCH_ONE = 2, REQ_TERMINATE = 3 };

struct ctl_request {
    uint32_t magic;
    uint32_t kind;
    int32_t value;          /* REQ_SET_DESIRED: the size; REQ_TERMINATE: 1 = decrement */
    uint32_t pad;
    char id[64];            /* REQ_TERMINATE: the instance */
};

/* The controller's end: bound, non-blocking, close-on-exec. -1 on error. */
int ctlsock_listen(const char *shm_name);
/* Reads one request; 1 when one was read and is well-formed, 0 when none
 * is waiting, -1 for a malformed one (why says how). */
int ctlsock_recv(int fd, struct ctl_request *req, char *why, size_t whysize);
/* Sends one request; 0, or -1 (controller not listening). */
int ctlsock_send(const char *shm_name, const struct ctl_request *req);

#endif
