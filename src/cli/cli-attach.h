/* Relaying a command's or a console's streams between the local terminal and kivad's WebSockets,
 * as LXD's lxc exec and lxc console do: one poll(2) loop over stdin, the WebSockets and a signalfd,
 * the local terminal in raw mode while a pseudo-terminal is attached (restored on every way out),
 * window sizes and signals sent on the "control" socket. Also the pure parts it is built from (the
 * console's Ctrl+a q escape, the control messages), testable without a terminal. Single-threaded;
 * called from a verb of the kiva CLI. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "basic-error.h"
#include "cli-ws.h"

/* ---- pure parts ------------------------------------------------------------------------- */

/* The console's detach sequence, as lxc console's: Ctrl+a (0x01) then 'q'. */
#define CLI_CONSOLE_ESCAPE 0x01

struct cli_console_escape {
	bool pending; /* the last byte seen was a Ctrl+a, held back */
};

/* Passes keyboard bytes through to the console, holding back a Ctrl+a until the next byte shows
 * whether it starts the detach sequence: Ctrl+a q sets *ret_detach (and drops the bytes after it);
 * Ctrl+a followed by anything else sends both. out holds len + 1 bytes. Returns how many bytes
 * of out to send. */
size_t cli_console_escape_filter(struct cli_console_escape *e, const uint8_t *in, size_t len,
				 uint8_t *out, bool *ret_detach);

/* The control socket's messages (LXD's api.InstanceExecControl): window-resize carries the size
 * as strings, signal a number. Caller frees; NULL on OOM. */
char *cli_control_window_resize(unsigned width, unsigned height);
char *cli_control_signal(int sig);

/* ---- the relay -------------------------------------------------------------------------- */

/* The size of the terminal on stdout (or stdin). Returns 0, or -ENOTTY when neither is one. */
int cli_terminal_size(unsigned *ret_width, unsigned *ret_height);

enum cli_attach_mode {
	CLI_ATTACH_EXEC, /* "0" stdin, "1" stdout, "2" stderr: pipes on the server */
	CLI_ATTACH_EXEC_PTY, /* "0" both ways: the server's pseudo-terminal */
	CLI_ATTACH_CONSOLE, /* "0" both ways; Ctrl+a q and signals detach */
};

enum {
	CLI_ATTACH_STDIN,
	CLI_ATTACH_STDOUT,
	CLI_ATTACH_STDERR,
	CLI_ATTACH_CONTROL,
	CLI_ATTACH_N,
};

struct cli_attach {
	enum cli_attach_mode mode;
	struct cli_ws *ws[CLI_ATTACH_N]; /* borrowed; NULL for a stream the mode does not have */
	bool disable_stdin; /* send the end of stdin at once, read nothing */
	/* results */
	bool detached; /* the console was left (Ctrl+a q, or a signal) */
	int signal; /* a signal that ended the session early (no control socket to forward it) */
};

/* Relays until the output ends: "1" and "2" for CLI_ATTACH_EXEC, "0" otherwise (each ends with an
 * empty text message, LXD's barrier, or a close), or until a console is detached. stdin goes to
 * "0" (CLI_ATTACH_EXEC: an empty text message at its end); in the other modes, when stdin is a
 * terminal, it is in raw mode meanwhile and SIGWINCH sends its new size. SIGINT, SIGTERM, SIGHUP,
 * SIGQUIT, SIGUSR1 and SIGUSR2 are forwarded to the command (as lxc exec does) or detach a
 * console. Then closes every WebSocket (close handshake, a second at most). Returns 0, or -errno
 * with reterr set (a WebSocket protocol error, a failed write to stdout). */
int cli_attach_run(struct cli_attach *a, struct kiva_error *reterr);
