/* The main() every suite-function unit test shares: runs the suite that
 * make_suite builds, exits nonzero when a test failed. */
#ifndef BOXER_TEST_CHECK_MAIN_H
#define BOXER_TEST_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

static inline int check_main(Suite *(*make_suite)(void))
{
    SRunner *sr = srunner_create(make_suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
