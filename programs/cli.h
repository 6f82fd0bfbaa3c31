/* What the command lines of the project's programs share: numbers and
 * sizes as options take them (option values are untrusted text: these
 * never overflow and never take a partial number), error lines, stop
 * signals and the standard descriptors. */
#ifndef Q2S_PROGRAM_CLI_H
#define Q2S_PROGRAM_CLI_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>

/* A decimal number with an optional binary suffix K, M, G, T, P or E
 * (either case): digits first, nothing after the suffix, no value past
 * 2^64 - 1. */
bool cli_parse_size(const char *text, uint64_t *value);

/* A whole decimal number, possibly signed, from INT_MIN + 1 to INT_MAX;
 * nothing before or after it. */
bool cli_parse_int(const char *text, int *value);

/* "PROGRAM: message" and a newline on stderr, whatever the message holds
 * (a file name, a server's words): control characters as C escapes. */
void cli_print_error_line(const char *program, const char *message);

/* Catches every signal that would end the process (those already ignored
 * stay ignored), so that the library can clean up and return; ignores
 * SIGPIPE.  cli_stop_flag() is the signal caught, 0 before any, for the
 * library's cancel flag; cli_die_of_stop_signal() then ends the process
 * of it, as a shell expects (nothing if none was caught). */
void cli_catch_stop_signals(void);
const volatile sig_atomic_t *cli_stop_flag(void);
void cli_die_of_stop_signal(void);

/* Gives each closed descriptor of 0, 1 and 2 /dev/null, and says which
 * were closed; -1 if /dev/null cannot be opened. */
int cli_guard_standard_descriptors(bool closed[3]);

/* The exit status of a usage error. */
#define CLI_EXIT_USAGE 2

/* A usage error: "PROGRAM: message" (fmt and ap), the program's usage
 * line (usage_line(stderr)) and the hint to --help, on stderr.  Returns
 * CLI_EXIT_USAGE. */
int cli_usage_error_v(const char *program, void (*usage_line)(FILE *out),
                      const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* What --help and --version printed must arrive, as with GNU tools:
 * EXIT_SUCCESS, or EXIT_FAILURE after saying why. */
int cli_flush_stdout(const char *program, bool stdout_closed);

/* The CPUs this process may run on. */
uint32_t cli_available_cpus(void);
/* The --progress-fd descriptor must be open for writing; it is kept from
 * the programs we start, so that its reader sees the end of file when we
 * exit.  -1 to go on, or EXIT_FAILURE after saying why. */
int cli_check_progress_fd(const char *program, int fd);

#endif
