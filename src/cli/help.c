/* help.c: `parley help [COMMAND]` and `parley version`: the usage text of DESIGN §1. */
#include "cli/cli.h"

#include <string.h>

#ifndef PARLEY_VERSION
#define PARLEY_VERSION "0.0.0"
#endif

/* One entry per subcommand; the text is printed as is after "usage: ". */
static const struct {
	const char *name, *usage;
} commands[] = {
	{ "serve",
	  "parley serve [--config FILE] [--domain D]... [--listen URI]... [--db PATH]\n"
	  "             [--peer DOMAIN=sip:HOST[:PORT]]... [--trust HOST]... [--dns SERVER[:PORT]]\n"
	  "             [--auth-algorithms md5|sha-256,md5|...]\n"
	  "             [--log-level error|warn|info|debug] [--log-format text|json] [--http [https:]ADDR:PORT]\n"
	  "             [--capture-memory SIZE] [--hep udp:HOST:PORT] [--hep-id N]\n"
	  "    Runs the registrar and proxy. With no flags it listens on udp:0.0.0.0:5060 and\n"
	  "    tcp:0.0.0.0:5060, serves the host name as its domain and keeps its data in ./parley.db.\n"
	  "    --listen udp:, tcp:, tls:, ws: or wss:HOST:PORT (IPv6 as udp:[::1]:5060; ws: and wss:\n"
	  "    are SIP over WebSocket, RFC 7118, for browser phones); several --listen and\n"
	  "    --domain allowed.\n"
	  "    TCP: --tcp-max-connections 10000, --tcp-max-per-source 500,\n"
	  "    --tcp-idle-timeout 300 (seconds).\n"
	  "    Every config key is also a flag of the same name (--realm, --log-file, --t1, --t2,\n"
	  "    --t4, --max-contacts, --min-expires, --max-expires, --default-expires,\n"
	  "    --nonce-lifetime, --ring-timeout, --flush-interval, --batch-wait); a flag wins over\n"
	  "    the file.\n"
	  "    SIGINT/SIGTERM stop it cleanly. SIGHUP (parley reload) reopens the log file and reads\n"
	  "    --config again: domains, peers, trust, log-level, log-format, [media] keys, http and\n"
	  "    metrics-auth change at once, without dropping registrations or calls; other changed\n"
	  "    keys are logged as needing a restart; a bad file is refused (FILE:LINE in the log) and\n"
	  "    the settings in use are kept.\n"
	  "    --pid-file F writes the PID to F (removed at exit).\n"
	  "    --capture-memory auto keeps the latest messages of each call for the HTTP API (auto:\n"
	  "    8M with --http, else none; K/M/G; 0: none); --hep udp:HOST:PORT sends a HEP v3\n"
	  "    copy of every message (Homer, sngrep) with capture agent id --hep-id (2001).\n" },
	{ "user", "parley user add USER@DOMAIN [--password PW]     (no --password: read from stdin)\n"
		  "parley user del USER@DOMAIN | parley user passwd USER@DOMAIN | parley user list\n"
		  "parley user import FILE [--update] [--skip-bad]   lines 'user@domain,password'\n"
		  "    Manages the users of the database (--db PATH, --config FILE).\n"
		  "    import checks every line and reports each bad one as FILE:LINE: reason; with a bad\n"
		  "    line nothing is imported (exit 2) unless --skip-bad imports the good ones. An\n"
		  "    existing user is a bad line unless --update gives it the new password.\n" },
	{ "reg", "parley reg list            current bindings (AOR, contact, source address, transport, expires)\n"
		 "    then the connection (as the debug log names it; none after a restart, - for UDP),\n"
		 "    +sip.instance and reg-id of Outbound flows (RFC 5626).\n" },
	{ "calls", "parley calls [--limit N]   call records (caller, callee, start, answer, end, result, duration)\n" },
	{ "trace", "parley trace [--user U] [--call-id X]   live call flows as ladders in the terminal\n"
		   "    Connects to the running server (the socket DB.trace.sock beside its database, --db\n"
		   "    PATH) and draws every message as it passes: a column per endpoint and one for\n"
		   "    Parley, an arrow per message with its time and method or status. --user shows the\n"
		   "    calls whose From, To or Request-URI user is U (or U@DOMAIN); --call-id one call.\n"
		   "    Ctrl-C stops. Exit 1 when no server runs.\n" },
	{ "ban", "parley ban list | parley ban del SOURCE   sources banned for failed authentication\n"
		 "    list: source, until (local time), time remaining, reason; del: lift a ban (a running\n"
		 "    server sees it within seconds); exit 1 when SOURCE has no ban.\n" },
	{ "admin", "parley admin add NAME [--password PW]     (no --password: read from stdin)\n"
		   "parley admin del NAME | parley admin passwd NAME | parley admin list\n"
		   "parley admin token NAME   print a new bearer token for the HTTP API (shown once)\n"
		   "    Accounts of the HTTP admin endpoint (--http): the dashboard's login and the JSON\n"
		   "    API. Passwords are kept as Argon2id hashes, tokens as SHA-256 hashes. Prefer the\n"
		   "    password on stdin: --password shows in ps and the shell's history. del also\n"
		   "    revokes the admin's tokens; a running server sees new tokens at once, and ends\n"
		   "    the sessions and tokens of a deleted admin (sessions: also after passwd) within 30 s.\n" },
	{ "check", "parley check [--config FILE] [flags]   validate a config and print the effective settings\n" },
	{ "reload", "parley reload [--pid-file F | --config F | --db PATH]   make the running server reload\n"
		    "    Sends SIGHUP to parley serve, found by --pid-file F, else the config's pid-file, else\n"
		    "    the lock it holds beside its database (PATH.lock). Exit 1 when no server runs.\n" },
	{ "backup", "parley backup FILE [--force]   copy the database (--db PATH) to FILE, also while serve runs\n"
		    "    One consistent snapshot through SQLite's online backup, taken in steps; the server\n"
		    "    goes on registering and writing meanwhile. FILE appears only once complete; an\n"
		    "    existing FILE is refused (exit 2) unless --force replaces it.\n" },
	{ "version", "parley version             print the version\n" },
	{ "help", "parley help [COMMAND]      print this help, or one command's\n" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

bool cli_usage(FILE *f, const char *cmd)
{
	if (cmd) {
		for (size_t i = 0; i < NCOMMANDS; i++)
			if (strcmp(cmd, commands[i].name) == 0) {
				fprintf(f, "usage: %s", commands[i].usage);
				return true;
			}
		return false;
	}
	fprintf(f, "usage: parley COMMAND [FLAGS]\n\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fputs(commands[i].usage, f);
	fprintf(f, "\nEvery command takes --db PATH and --config FILE. Exit codes: 0 ok, "
		   "2 usage or config error, 1 runtime failure.\n");
	return true;
}

int cli_help(int argc, char **argv)
{
	if (argc > 2) {
		fprintf(stderr, "parley: help takes at most one command\n");
		return 2;
	}
	if (argc == 2) {
		if (!cli_usage(stdout, argv[1])) {
			fprintf(stderr, "parley: unknown command '%s'\n", argv[1]);
			cli_usage(stderr, NULL);
			return 2;
		}
		return 0;
	}
	cli_usage(stdout, NULL);
	return 0;
}

int cli_version(int argc, char **argv)
{
	if (argc > 1) {
		fprintf(stderr, "parley: version takes no arguments\n");
		return 2;
	}
	printf("parley %s\n", PARLEY_VERSION);
	return 0;
}
