/* testlib.h: the smallest test runner that does the job.
 *
 *   TEST(name) { CHECK(x == 1); CHECK_STR(a, "b"); }
 *   int main(void) { return RUN_TESTS(); }
 *
 * Tests register themselves (constructor attribute), run in file order and
 * each failed CHECK prints file:line and the expression. The last line is
 * "N passed, N failed" (tests/run.sh adds up those lines). */
#ifndef RTM_TESTLIB_H
#define RTM_TESTLIB_H

#include <stdio.h>
#include <string.h>

typedef void (*test_fn)(void);
struct test_case {
    const char *name;
    test_fn fn;
};
#define TEST_MAX 512
static struct test_case test_cases[TEST_MAX];
static int test_count, test_failed_checks;

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void register_##name(void)                                \
    {                                                                                              \
        if (test_count < TEST_MAX) test_cases[test_count++] = (struct test_case){#name, test_##name}; \
    }                                                                                              \
    static void test_##name(void)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);              \
            test_failed_checks++;                                                                  \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                   \
            fprintf(stderr, "  %s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__, a_ ? a_ : "(null)",   \
                    b_ ? b_ : "(null)");                                                           \
            test_failed_checks++;                                                                  \
        }                                                                                          \
    } while (0)

static inline int run_tests(const char *file)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < test_count; i++) {
        int before = test_failed_checks;
        test_cases[i].fn();
        if (test_failed_checks == before) {
            passed++;
            printf("ok %d - %s\n", i + 1, test_cases[i].name);
        } else {
            failed++;
            printf("not ok %d - %s\n", i + 1, test_cases[i].name);
        }
        fflush(stdout);
    }
    printf("# %s\n%d passed, %d failed\n", file, passed, failed);
    return failed ? 1 : 0;
}
#define RUN_TESTS() run_tests(__FILE__)

#endif
