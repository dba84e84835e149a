/* codegen/tmpl_gpu_scan.c -- GPU forms (see codegen/tmpl_gpu.c).  None yet: 1 for every root. */
#include "tmpl.h"

int
tmpl_gpu_scan(Lower *L)
{
	(void)L;
	return 1;
}
