/* Progress of a conversion: the human display on stderr (-p) and the
 * values a calling program reads (--progress-fd), both fed by the
 * library's progress callback. */
#ifndef Q2S_PROGRAM_PROGRESS_H
#define Q2S_PROGRAM_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "qcow2-to-stdout.h"

/* What the progress display last showed. */
struct progress_display {
    const char *scan_label;
    int phase;     /* -1 before the first report */
    int percent;   /* in hundredths */
};

/* Progress for a calling program (--progress-fd): what XAPI reads from
 * vhd-tool run with --progress --machine, so that it can read ours the
 * same way.  vhd-tool writes each new whole percentage as three ASCII
 * digits, no separator, flushed at once (xapi-project/xen-api,
 * ocaml/vhd-tool/src/impl.ml):
 *
 *     let machine_progress_bar total_work =
 *       let last_percent = ref (-1) in
 *       fun work_done ->
 *         let new_percent = Int64.(to_int (div (mul work_done 100L) total_work)) in
 *         if new_percent <= 100 && !last_percent <> new_percent then begin
 *           Printf.printf "%03d%!" new_percent;
 *           last_percent := new_percent
 *         end
 *
 * and XAPI reads exactly three bytes at a time from the pipe, until end of
 * file (ocaml/xapi/vhd_tool_wrapper.ml, run_vhd_tool):
 *
 *     let buf = Bytes.make 3 '\000' in
 *     while true do
 *       Xapi_stdext_unix.Unixext.really_read pipe_read buf 0
 *         (Bytes.length buf) ;
 *       progress_cb (int_of_string (Bytes.to_string buf))
 *     done
 *
 * really_read loops over short reads; a newline or any separator would make
 * int_of_string fail on the next chunk, and XAPI then stops reading.  So:
 * "%03d", nothing else, one write(2) of 3 bytes per value.
 *
 * The overall percentage: pass 1 takes 0 to 50 and pass 2 50 to 100 when
 * pass 1 reads the input (its first report is not already its end);
 * otherwise (nothing to read, or a single read) pass 2 takes 0 to 100.
 * With --measure, pass 1 takes 0 to 100.  Values only go up, each is
 * written once; 000 comes before the input is opened, 100 only once the
 * image (or the measure) was written in full: up to then at most 099. */
struct machine_progress {
    const char *program;  /* for the warning when the reader goes */
    int fd;          /* -1: none asked for, or no more written */
    bool measure;
    int scan_span;   /* -1 until the first report; then 0, 50 or 100 */
    int last;        /* the last value written, -1 before 000 */
};

/* Both kinds of progress, for the library's callback. */
struct progress {
    bool human;
    struct progress_display display;
    struct machine_progress *machine;
};

/* Writes value (0 to 100) if it is above the last one written. */
void machine_progress_write(struct machine_progress *m, int value);

/* The library's progress callback; opaque is a struct progress. */
void report_progress(void *opaque, enum q2s_phase phase, uint64_t done,
                     uint64_t total);

#endif
