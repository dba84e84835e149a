/* runtime/status.c -- names of the segc_status codes (kept apart from engine.c so that the
 * segc tool can use it without pulling in the engine, which needs generated code). */
#include "segc_engine.h"

const char *
segc_status_name(segc_status s)
{
	switch (s) {
	case SEGC_OK:
		return "SEGC_OK";
	case SEGC_ERR_INVALID_ARGUMENT:
		return "SEGC_ERR_INVALID_ARGUMENT";
	case SEGC_ERR_IO:
		return "SEGC_ERR_IO";
	case SEGC_ERR_FORMAT:
		return "SEGC_ERR_FORMAT";
	case SEGC_ERR_MISMATCH:
		return "SEGC_ERR_MISMATCH";
	case SEGC_ERR_NO_MEMORY:
		return "SEGC_ERR_NO_MEMORY";
	case SEGC_ERR_STATE:
		return "SEGC_ERR_STATE";
	case SEGC_ERR_UNSUPPORTED:
		return "SEGC_ERR_UNSUPPORTED";
	case SEGC_ERR_DEVICE:
		return "SEGC_ERR_DEVICE";
	}
	return "SEGC_ERR_UNKNOWN";
}
