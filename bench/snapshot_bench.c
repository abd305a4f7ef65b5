/* Times a reader's snapshot of the shared table (what asgctl, the status
 * server and the dashboard take), while the monitor and controller write.
 * usage: snapshot_bench SHM_NAME COUNT; prints JSON. */
#include <stdio.h>
#include <stdlib.h>

#include "../common/util.h"
#include "../shm/table.h"
#include "../report/render.h"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int count = argc == 3 ? atoi(argv[2]) : 0;
    if (count < 1 || count > 100000) {
        fprintf(stderr, "usage: snapshot_bench SHM_NAME COUNT (1..100000)\n");
        return 2;
    }
    struct table t;
    char err[512];
    if (table_attach(argv[1], true, &t, err, sizeof err) != 0) {
        fprintf(stderr, "snapshot_bench: %s\n", err);
        return 1;
    }
    int64_t *us = calloc((size_t)count, sizeof *us);
    if (!us)
        return 1;
    uint32_t rows = 0, torn = 0;
    for (int i = 0; i < count; i++) {
        struct snapshot s;
        int64_t t0 = now_us();
        if (snapshot_take(&t, NULL, &s) != 0) {
            fprintf(stderr, "snapshot_bench: header unreadable\n");
            return 1;
        }
        us[i] = now_us() - t0;
        rows = s.nrows;
        torn += s.torn;
        snapshot_free(&s);
    }
    qsort(us, (size_t)count, sizeof *us, cmp_i64);
    printf("{\"rows\":%u,\"count\":%d,\"median_ms\":%.3f,\"p99_ms\":%.3f,\"torn\":%u}\n", rows, count,
           us[count / 2] / 1000.0, us[(count * 99) / 100 < count ? (count * 99) / 100 : count - 1] / 1000.0,
           torn);
    free(us);
    table_detach(&t);
    return 0;
}
