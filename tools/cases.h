/* tools/cases.h -- `segc run` over whole cases (tools/cases.c): NIfTI inputs and outputs,
 * sliding windows, mirroring, post-processing, batches with a journal (docs/cases.md). */
#ifndef SEGC_TOOLS_CASES_H
#define SEGC_TOOLS_CASES_H

/* 1 when the arguments of `segc run` ask for a whole case (a .nii/.nii.gz input, --input-dir,
 * --sliding-window): cmd_run then hands over to cases_run. */
int cases_wanted(int argc, char **argv);
/* `segc run ENGINE ...` in case mode; returns the exit status (0, 1 error, 2 usage). */
int cases_run(int argc, char **argv);

#endif
