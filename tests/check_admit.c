/* The controller's admission decision (controller/admit.h), a pure
 * function: driven here without a table. */
#include <string.h>

#include "../controller/admit.h"
#include "check_suites.h"

static struct admit_room room_of(int max, int target, int free_rows)
{
    return (struct admit_room){true, max, target, free_rows, 8};
}

START_TEST(test_admits_within_the_maximum_in_force_oldest_first)
{
    /* A schedule lowered the maximum to 4 and the target is 3: the first
     * request takes the last place, the second is refused. */
    struct admit_ask asks[] = {{"a-1", false}, {"a-2", false}};
    struct admit_room room = room_of(4, 3, 5);
    struct admit_answer out[2];
    admit_decide(asks, 2, &room, out);
    ck_assert_int_eq(out[0].verdict, ADMIT_YES);
    ck_assert_str_eq(out[0].reason, "");
    ck_assert_int_eq(out[1].verdict, ADMIT_NO);
    ck_assert_str_eq(out[1].reason, "the group is at its maximum size (4)");
    /* The same requests under the file's maximum of 10: both join. */
    room.max = 10;
    admit_decide(asks, 2, &room, out);
    ck_assert_int_eq(out[0].verdict, ADMIT_YES);
    ck_assert_int_eq(out[1].verdict, ADMIT_YES);
}
END_TEST

START_TEST(test_refuses_for_want_of_a_row_before_the_maximum)
{
    struct admit_ask asks[] = {{"a-1", false}, {"a-2", false}, {"a-3", false}};
    struct admit_room room = room_of(10, 2, 1);
    struct admit_answer out[3];
    admit_decide(asks, 3, &room, out);
    ck_assert_int_eq(out[0].verdict, ADMIT_YES);
    ck_assert_int_eq(out[1].verdict, ADMIT_NO_FULL);
    ck_assert_str_eq(out[1].reason, "the instance table is full (8 rows)");
    ck_assert_int_eq(out[2].verdict, ADMIT_NO_FULL);
    /* full and at the maximum: the table's limit is said */
    room = room_of(2, 2, 0);
    admit_decide(asks, 1, &room, out);
    ck_assert_int_eq(out[0].verdict, ADMIT_NO_FULL);
}
END_TEST

START_TEST(test_a_known_instance_takes_no_place)
{
    /* It has a row already (launched, or adopted from the provider since
     * it asked): nothing to make, and no place taken from the next. */
    struct admit_ask asks[] = {{"web-1", true}, {"a-2", false}};
    struct admit_room room = room_of(4, 3, 1);
    struct admit_answer out[2];
    admit_decide(asks, 2, &room, out);
    ck_assert_int_eq(out[0].verdict, ADMIT_KNOWN);
    ck_assert_int_eq(out[1].verdict, ADMIT_YES);
}
END_TEST

START_TEST(test_adoption_turned_off_refuses_what_waits)
{
    struct admit_ask asks[] = {{"a-1", false}, {"web-1", true}};
    struct admit_room room = room_of(10, 1, 5);
    room.adopt_unknown = false;
    struct admit_answer out[2];
    admit_decide(asks, 2, &room, out);
    ck_assert_int_eq(out[0].verdict, ADMIT_NO);
    ck_assert(strstr(out[0].reason, "monitor.adopt_unknown is off"));
    ck_assert_int_eq(out[1].verdict, ADMIT_KNOWN);
}
END_TEST

Suite *admit_suite(void)
{
    const TTest *tests[] = {
        test_admits_within_the_maximum_in_force_oldest_first,
        test_refuses_for_want_of_a_row_before_the_maximum,
        test_a_known_instance_takes_no_place,
        test_adoption_turned_off_refuses_what_waits,
        NULL};
    return suite_of("admit", "decide", NULL, NULL, 0, tests, NULL);
}
