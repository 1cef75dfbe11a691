/**
 * --help texts. Each says what the command does, what it talks to (the
 * kernel, the daemon's API, its metrics listener) and shows examples, so a
 * first-time user can go from nothing to a spliced connection.
 */
import { DEFAULT_API, DEFAULT_METRICS_URL, ENV_API, ENV_METRICS_URL, ENV_TOKEN } from '../sdk/endpoint.js';

const GLOBAL_OPTIONS = `Options for every command that talks to the daemon:
  --api <url|path>     where the daemon's API listens: a unix socket (unix:/run/baton/api.sock
                       or just the path), or http://host:port / host:port (needs --token)
                       (env ${ENV_API}; default ${DEFAULT_API})
  --token <token>      bearer token, when the daemon was started with one; on TCP it is always
                       needed (env ${ENV_TOKEN})
  --json               print one JSON document instead of text (errors: the problem document)
  -h, --help           this help, or a command's: baton <command> --help`;

export const MAIN_HELP = `baton: move live TCP connections between hosts without the client noticing.

Usage: baton <command> [options]

Run the load balancer (talks to the kernel: loads XDP, pins maps under bpffs):
  lb                   start the daemon on the LB host: datapath on --interface, REST API, metrics
  lb drain             drain the running LB: refuse new splices, serve what it holds (--wait, --cancel)
  agent                start the back-end agent (migrate mode): blob endpoint for LBs, app socket, metrics
  down                 tear down what \`baton lb\` pinned (spliced connections stop flowing)
  agent down           tear down what \`baton agent\` pinned and its app socket (migrated connections stop)
  doctor               check this host for what baton needs (kernel, bpffs, offloads, rp_filter, ...)

Inspect and steer (talk to the daemon's REST API, ${DEFAULT_API} by default):
  status               is the daemon up and ready, its version, splices by state, cluster and drain
  splices ls           list spliced connections (--state, --backend, --limit, --all)
  splices show <id>    one connection: addresses, handoffs, per-direction traffic
  splices rm <id>      abort a connection (both ends get a RST)
  handoff <id> <ip:port>   move a connection's next request to another back end

Observe (talks to the metrics listener, ${DEFAULT_METRICS_URL} by default):
  metrics              summary of the daemon's Prometheus metrics (--raw for the exposition)

${GLOBAL_OPTIONS}

Examples:
  baton doctor --interface eth0                         # before the first start
  baton lb --interface eth0 --interface eth1                # start the daemon (see baton lb --help)
  baton status
  baton splices ls --state forwarding --json | jq '.items[].client'
  baton handoff 17 10.0.2.7:8080
  BATON_API=/run/baton/api.sock baton splices show 17

Exit codes: 0 ok, 1 the daemon or a check said no, 2 wrong usage, 3 daemon not reachable.`;

export const COMMAND_HELP: Record<string, string> = {
  status: `Usage: baton status [--api <url|path>] [--token <t>] [--json]

Asks the daemon (GET /healthz, /readyz, /v1/version, /v1/splices, /v1/cluster)
whether it runs, whether its datapath is loaded and attached, which version it
is, how many connections it holds in each state, and the cluster as this LB
sees it: its id and address, each live peer (address, TTL left, when it last
refreshed, its connections installed here, packets forwarded to it in the
owner header), connections owned here vs forwarded to peers, the owner
directory's lag (changes pending, last publish, propagation p50/p99) and the
drain state. Without --store the daemon runs alone, and status says so.

${GLOBAL_OPTIONS}

Examples:
  baton status
  baton status --api /run/baton/api.sock --json`,

  'lb drain': `Usage: baton lb drain [--wait [--timeout <duration>]] [--cancel] [--api <url|path>] [--token <t>] [--json]

Drains the running LB (POST /v1/drain): it keeps serving every connection it
holds (spliced connections keep flowing, peers keep forwarding theirs to it in
the owner header) and refuses new splices with DRAINING, which front ends
answer by relaying the connection themselves. Then take the LB out of the
router (remove its next hop for the VIPs) so new flows go to the others; the
LB reports "drained" once it holds no connection, and the host can be stopped.
Only the operator (token) or root may drain (FORBIDDEN_OPERATION otherwise).
A daemon restart serves again.

  --wait               wait until it holds nothing (exit 1 if --timeout passes first)
  --timeout <d>        bound --wait: 90s, 5m, 1h
  --cancel             stop draining: accept new splices again (DELETE /v1/drain)

${GLOBAL_OPTIONS}

Examples:
  baton lb drain
  baton lb drain --wait --timeout 10m && systemctl stop baton-lb
  baton lb drain --cancel`,

  splices: `Usage: baton splices ls [--state <s>] [--backend <ip:port>] [--limit <n>] [--cursor <id>] [--all]
       baton splices show <id>
       baton splices rm <id>

Spliced connections, from the daemon's REST API:
  ls     GET /v1/splices: one page (--limit, default the daemon's 100) from --cursor,
         or every page with --all; filter by --state (blocked, forwarding, held,
         closing, closed) and by --backend (the current back end, "ip:port")
  show   GET /v1/splices/<id>: client, VIP, every handoff (back end, seq/ts deltas,
         window scales) and packets/bytes per direction as the datapath counted them
  rm     DELETE /v1/splices/<id>: abort; both ends get a RST, the entries are removed (a closed connection: removed only)

${GLOBAL_OPTIONS}

Examples:
  baton splices ls
  baton splices ls --state forwarding --backend 198.18.2.2:8080 --all
  baton splices show 17 --json
  baton splices rm 17`,

  handoff: `Usage: baton handoff <id> <backend ip:port> [--quiesce-timeout-ms <ms>]

Moves spliced connection <id> to another back end (POST /v1/splices/<id>/handoffs).
baton opens a connection to the new back end itself and, at the next request
boundary (every response byte acknowledged, no request bytes in flight), sends
the client's next bytes there; the old back end's leg is closed with a FIN the
client never sees. At most 8 handoffs per connection (HANDOFFS_EXHAUSTED).

${GLOBAL_OPTIONS}

Examples:
  baton handoff 17 198.18.3.2:8080
  baton handoff 17 '[2001:db8:3::2]:8080' --quiesce-timeout-ms 2000`,

  metrics: `Usage: baton metrics [--metrics-url <url>] [--raw] [--json]

Scrapes the daemon's Prometheus listener (env ${ENV_METRICS_URL}; default
${DEFAULT_METRICS_URL}) and prints a summary: every baton_* metric
summed over its labels with a break-down by label, and p50/p99 of each
*_seconds histogram. --raw prints the exposition text unchanged; --json prints
the parsed families.

Examples:
  baton metrics
  baton metrics --raw | grep baton_datapath
  baton metrics --metrics-url http://127.0.0.1:9300/metrics --json`,

  doctor: `Usage: baton doctor [--role lb|agent] [-i|--interface <dev>]... [--pin-dir <dir>] [--config <file>] [--netns <name>] [--vip <ip>]... [--transparent] [--json]

Checks this host (or network namespace) for what baton needs and for the
setup mistakes that break splicing, each ok / warn / fail with what to do:
kernel version and BTF, bpffs at the pin directory, root / CAP_NET_ADMIN /
CAP_BPF, libbpf, the built BPF objects, each --interface (exists, XDP mode
attached, TX checksum offload, GRO/LRO, rp_filter), ip_forward, conntrack
(mid-stream packets of moved flows are INVALID unless tcp_be_liberal/loose),
TCP_REPAIR on a real socket, tcp_timestamps/sack.
Talks to: the kernel only (sysfs, procfs, ip, ethtool); the daemon need not run.

Options:
  -i, --interface <dev>  an interface the daemon will attach to (repeatable)
  --pin-dir <dir>      where the daemon pins maps and links (default /sys/fs/bpf/baton)
  --config <file>      read both from baton lb's config file instead
The same BATON_INTERFACES / BATON_PIN_DIR / BATON_CONFIG as baton lb apply.
  --netns <name>       run the checks inside network namespace <name> (ip netns)
  --json               print the checks as JSON
  --role agent         check a migrate-mode back end for \`baton agent\` instead (docs/agent.md):
                       bpffs at its pin dir, CAP_NET_ADMIN/CAP_BPF, xdp_agent.o, each --vip on lo
                       (or --transparent), arp_ignore/arp_announce, rp_filter (strict drops the
                       LB's forwarded segments: 2 or 0 work), conntrack (tcp_loose=0 never picks
                       up a restored connection), TCP_REPAIR, and the agent's XDP program
                       attaching to each --interface (attached and detached again to prove it).
                       Reads baton agent's flags, BATON_AGENT_* and its --config; the VIPs of its
                       --app entries are checked too.
  --vip <ip>           (--role agent) a VIP this back end serves (repeatable)

Exit code 1 when any check fails (warnings do not).

Examples:
  baton doctor --interface eth0 --interface eth1
  baton doctor --netns lb1 --interface to-client --json
  baton doctor --role agent --interface eth0 --vip 198.19.0.1`,
};
