/* When asgd tells systemd it is ready (supervisor/notify.h): a pure
 * function of the table's header, driven here with headers made by hand. */
#include <string.h>

#include "../supervisor/notify.h"
#include "check_suites.h"

#define START 5000 /* the supervisor's start, now_ms */

/* A header as a supervisor started at START sees it once every role is
 * up: monitor 11 and controller 12 running, the monitor bound and done
 * with a round, the controller done with an evaluation, both after START. */
static struct table_hdr up(void)
{
    struct table_hdr h;
    memset(&h, 0, sizeof h);
    h.pid_monitor = 11;
    h.pid_controller = 12;
    strcpy(h.monitor_addr, "127.0.0.1:7301");
    h.probe_rounds = 1;
    h.last_probe_round_ms = START + 40;
    h.evaluations = 1;
    h.last_eval_ms = START + 30;
    return h;
}

START_TEST(test_ready_once_monitor_and_controller_have_worked_since_the_start)
{
    struct table_hdr h = up();
    ck_assert(notify_roles_up(&h, 11, 12, false, START));
    /* Each missing piece alone keeps it not ready. */
    h = up();
    h.monitor_addr[0] = '\0';
    ck_assert(!notify_roles_up(&h, 11, 12, false, START));
    h = up();
    h.probe_rounds = 0;
    ck_assert(!notify_roles_up(&h, 11, 12, false, START));
    h = up();
    h.evaluations = 0;
    ck_assert(!notify_roles_up(&h, 11, 12, false, START));
    /* The role the supervisor forked is the one in the header. */
    h = up();
    ck_assert(!notify_roles_up(&h, 13, 12, false, START));
    ck_assert(!notify_roles_up(&h, 11, 0, false, START));
}
END_TEST

START_TEST(test_a_reattached_tables_old_progress_is_not_readiness)
{
    /* The table of the asgd before: an address, rounds and evaluations,
     * all from before this supervisor started. */
    struct table_hdr h = up();
    h.last_probe_round_ms = START - 1;
    h.last_eval_ms = START - 1;
    ck_assert(!notify_roles_up(&h, 11, 12, false, START));
    h.last_probe_round_ms = START + 1;
    ck_assert(!notify_roles_up(&h, 11, 12, false, START));
    h.last_eval_ms = START + 1;
    ck_assert(notify_roles_up(&h, 11, 12, false, START));
}
END_TEST

START_TEST(test_a_standby_is_ready_without_an_evaluation)
{
    /* With ha.etcd a standby's controller evaluates nothing until it
     * leads: its monitor serving is enough. */
    struct table_hdr h = up();
    h.evaluations = 0;
    h.last_eval_ms = 0;
    ck_assert(notify_roles_up(&h, 11, 12, true, START));
    h.last_probe_round_ms = START - 1;
    ck_assert(!notify_roles_up(&h, 11, 12, true, START));
}
END_TEST

Suite *notify_suite(void)
{
    const TTest *tests[] = {
        test_ready_once_monitor_and_controller_have_worked_since_the_start,
        test_a_reattached_tables_old_progress_is_not_readiness,
        test_a_standby_is_ready_without_an_evaluation,
        NULL,
    };
    return suite_of("notify", "ready", NULL, NULL, 0, tests, NULL);
}
