/* ir/tune.c -- lookups in a tuning table (tune.h). */
#include <string.h>

#include "tune.h"

const TuneEntry *
tune_find(const TuneTable *t, const char *key)
{
	if (!t || !key)
		return NULL;
	for (int i = 0; i < t->n; i++)
		if (!strcmp(t->e[i].key, key))
			return &t->e[i];
	return NULL;
}
