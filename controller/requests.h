/* Operators' requests (set desired, launch one, terminate with or without
 * decrement), decided by the controller against the bounds in force. */
#ifndef ASG_CTL_REQUESTS_H
#define ASG_CTL_REQUESTS_H

#include "ctl.h"

struct ctl_request;
/* One well-formed request: -1 when the table's lock could not be had (the
 * request is dropped, as a busy table's would be). */
int ctl_carry_out_request(struct ctl *c, const struct ctl_request *rq);
/* Every request waiting on the controller's socket. */
void ctl_handle_requests(struct ctl *c);

#endif
