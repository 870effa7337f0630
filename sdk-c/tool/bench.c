/* bench.c: placeholder */
#include "tool.h"
#include "toolconn.h"
int tool_bench_main(int argc, char **argv) { (void)argc; (void)argv; return RTM_EXIT_FAIL; }
