/* tablefmt: rewrites a stopped manager's shared table in another layout
 * version, with the engine asgd migrates with (shm/migrate.h), run the
 * other way: the upgrade test (tests/integration/t_supervisor.py) turns a
 * live table into version 19's, as an asgd of that version would have
 * left it. A test tool: built beside the unit tests, never installed.
 *
 *   tablefmt --to 19|current NAME */
#include <stdio.h>
#include <string.h>

#include "../common/util.h"
#include "../shm/migrate.h"

int main(int argc, char **argv)
{
    if (argc != 4 || strcmp(argv[1], "--to") != 0 ||
        (strcmp(argv[2], "19") != 0 && strcmp(argv[2], "current") != 0)) {
        fprintf(stderr, "usage: tablefmt --to 19|current NAME\n");
        return 2;
    }
    const struct table_layout *to = strcmp(argv[2], "19") == 0 ? &table_layout_v19 : &table_layout_current;
    struct migrate_report rep;
    char err[512];
    if (table_migrate(argv[3], to, &rep, err, sizeof err) != 0) {
        fprintf(stderr, "tablefmt: %s\n", err);
        return 1;
    }
    printf("%u instance(s), %u event(s)\n", rep.instances, rep.events);
    return 0;
}
