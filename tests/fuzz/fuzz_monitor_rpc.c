/* Fuzz target: the Monitor service's Register, Deregister and Join, and
 * the monitor's Health/Check, against a real shared table and a real CA.
 * The first byte picks the method (and adoption). */
#include <grpc/status.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/util.h"
#include "../../monitor_s/monitor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct table T;
static char name[64];

static char ca_dir[] = "/tmp/asg-fuzz-ca-XXXXXX";

static void remove_table(void)
{
    table_detach(&T);
    table_unlink(name);
    char cmd[80];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", ca_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", ca_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct monitor m;
    static unsigned runs;
    if (!m.t) {
        log_set_level(LOG_LVL_ERROR);
        snprintf(name, sizeof name, "/asg-fuzz-%d", (int)getpid());
        char err[256];
        table_unlink(name);
        if (table_create(name, 8, &T, err, sizeof err) != 0)
            abort();
        atexit(remove_table);
        m.t = &T;
        config_defaults(&m.cfg);
        if (!mkdtemp(ca_dir) || pki_prepare(ca_dir, err, sizeof err) != 0 ||
            !(m.ca = pki_ca_open(ca_dir, err, sizeof err))) {
            fprintf(stderr, "fuzz: CA: %s\n", err);
            abort();
        }
    }
    if (size == 0)
        return 0;
    if (++runs % 64 == 0) { /* empty the table and the inbox now and then: keep every path */
        for (uint32_t i = 0; i < T.capacity; i++)
            T.rows[i].state = ROW_FREE;
        memset(T.hdr->inbox, 0, sizeof T.hdr->inbox);
    }
    m.cfg.adopt_unknown = (data[0] & 2) != 0;
    struct rpc_reply r;
    memset(&r, 0, sizeof r);
    if ((data[0] & 24) == 24)
        monitor_h_health(&m, data + 1, size - 1, "", &r);
    else if (data[0] & 8)
        monitor_h_join(&m, data + 1, size - 1, "", &r);
    else if (data[0] & 1)
        monitor_h_deregister(&m, data + 1, size - 1, (data[0] & 4) ? "a-*" : NULL, &r);
    else
        monitor_h_register(&m, data + 1, size - 1, (data[0] & 4) ? "a-*" : NULL, &r);
    if (r.status == GRPC_STATUS_OK && !r.data)
        abort();
    if (atomic_load(&T.hdr->lock_holder) != 0)
        abort(); /* a handler never returns holding the lock */
    for (uint32_t i = 0; i < T.capacity; i++)
        if (T.rows[i].state != ROW_FREE && !valid_instance_id(T.rows[i].id, strlen(T.rows[i].id)))
            abort(); /* nothing unchecked reaches the table */
    for (int i = 0; i < TABLE_INBOX; i++)
        if (T.hdr->inbox[i].state != INBOX_FREE &&
            (!valid_instance_id(T.hdr->inbox[i].id, strlen(T.hdr->inbox[i].id)) || !T.hdr->inbox[i].addr[0]))
            abort(); /* nor its inbox */
    free(r.data);
    return 0;
}
