/* codegen/tmpl_gpu_conv.c -- GPU forms (see codegen/tmpl_gpu.c).  None yet: 1 for every root. */
#include "tmpl.h"

int
tmpl_gpu_conv(Lower *L)
{
	(void)L;
	return 1;
}
