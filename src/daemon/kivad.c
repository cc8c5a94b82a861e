/* kivad: parse arguments, run. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic-string.h"
#include "daemon.h"
#include "kiva-config.h"

static void usage(FILE *f)
{
	fputs("Usage: kivad [OPTIONS]\n"
	      "KIVA daemon: runs LXC system containers behind LXD's /1.0 REST API.\n\n"
	      "  --state-dir DIR       state, store, pool and containers (default /var/lib/kiva)\n"
	      "  --socket PATH         API unix socket (default /run/kiva/unix.socket)\n"
	      "  --raft-address A:P    address of the store's raft transport (default "
	      "127.0.0.1:8444)\n"
	      "  --storage DRIVER      btrfs, dir or auto (default auto: btrfs, on a loop file if\n"
	      "                        the state dir is not on btrfs)\n"
	      "  --pool-size SIZE      size of the loop file (default: LXD's rule, 5-30 GiB)\n"
	      "  --helper PATH         kiva-helper binary (default: next to kivad, then libexec)\n"
	      "  --default-network N   the bridge created at the first start (default kivabr0, or\n"
	      "                        kivabr<id> for another state dir); none: no default NIC\n"
	      "  --capacity FILE       the capacity file (default /etc/kiva/capacity.yaml; missing:\n"
	      "                        the hardware, target 1.0); SIGHUP re-reads it\n"
	      "  --sys-root DIR        read the topology and sensors from DIR/sys and DIR/proc\n"
	      "                        (default /; a fake tree for tests and demos)\n"
	      "  --cpu-weight N        run in the cgroup kiva.daemon with this CPU weight (1-10000,\n"
	      "                        cgroup v2's scale; default 1000, ten default groups);\n"
	      "                        0: stay in the cgroup kivad was started in\n"
	      "  --daemon              run in the background once ready; log to STATE/kivad.log\n"
	      "  --log-file PATH       log there instead of stderr\n"
	      "  --debug               debug logging\n"
	      "  --purge               stop the state dir's containers and remove its bridges,\n"
	      "                        interfaces, nftables tables, pool and files, then exit\n"
	      "  --version, --help\n",
	      f);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"state-dir", required_argument, NULL, 's'},
		{"socket", required_argument, NULL, 'S'},
		{"raft-address", required_argument, NULL, 'r'},
		{"storage", required_argument, NULL, 'b'},
		{"pool-size", required_argument, NULL, 'p'},
		{"helper", required_argument, NULL, 'H'},
		{"daemon", no_argument, NULL, 'd'},
		{"log-file", required_argument, NULL, 'l'},
		{"debug", no_argument, NULL, 'D'},
		{"default-network", required_argument, NULL, 'n'},
		{"purge", no_argument, NULL, 'P'},
		{"capacity", required_argument, NULL, 'c'},
		{"sys-root", required_argument, NULL, 'R'},
		{"cpu-weight", required_argument, NULL, 'w'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct daemon_options opts = {
		.state_dir = "/var/lib/kiva",
		.socket_path = "/run/kiva/unix.socket",
		.raft_address = "127.0.0.1:8444",
		.capacity_path = "/etc/kiva/capacity.yaml",
		.sys_root = "/",
		.cpu_weight = 1000,
	};
	bool purge = false;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			opts.state_dir = optarg;
			break;
		case 'S':
			opts.socket_path = optarg;
			break;
		case 'r':
			opts.raft_address = optarg;
			break;
		case 'c':
			opts.capacity_path = optarg;
			break;
		case 'R':
			opts.sys_root = optarg;
			break;
		case 'w': {
			char *end = NULL;
			unsigned long w;

			errno = 0;
			w = strtoul(optarg, &end, 10);
			if (errno || !end || end == optarg || *end || optarg[0] == '-' ||
			    w > 10000) {
				fprintf(stderr,
					"Error: invalid --cpu-weight '%s': 0 (off) or 1-10000\n",
					optarg);
				return 1;
			}
			opts.cpu_weight = (unsigned)w;
			break;
		}
		case 'b':
			opts.storage_driver = optarg;
			break;
		case 'p':
			if (parse_size_bytes(optarg, &opts.pool_size_bytes) < 0) {
				fprintf(stderr, "Error: invalid --pool-size '%s'\n", optarg);
				return 1;
			}
			break;
		case 'H':
			opts.helper_path = optarg;
			break;
		case 'd':
			opts.daemonize = true;
			break;
		case 'n':
			opts.default_network = optarg;
			break;
		case 'P':
			purge = true;
			break;
		case 'l':
			opts.log_file = optarg;
			break;
		case 'D':
			opts.debug = true;
			break;
		case 'V':
			puts(KIVA_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "Error: unexpected argument '%s'\n", argv[optind]);
		return 1;
	}
	return purge ? daemon_purge(&opts) : daemon_run(&opts);
}
