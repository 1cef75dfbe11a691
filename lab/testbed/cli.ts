/** scripts/testbed: build a testbed and leave it running, remove one, clean stale ones, list them. */
import { createTestbed } from './create.js';
import { cleanStale, destroyPrefix, listTestbeds } from './inventory.js';
import { canRunPrivileged } from './privilege.js';
import { loadTopology } from './topology.js';

const USAGE = `usage: scripts/testbed <command>
  up <topology> [--prefix P] [--json]   build and leave running; topology: star | star:N | file.json | '{json}'
  down <prefix>                         remove a testbed
  clean [--all]                         remove stale testbeds (--all: also ones made by \`up\`)
  ls                                    list testbeds`;

export async function runCli(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const flag = (name: string) => {
    const i = rest.indexOf(name);
    if (i < 0) return false;
    rest.splice(i, 1);
    return true;
  };
  const option = (name: string) => {
    const i = rest.indexOf(name);
    if (i < 0) return undefined;
    const v = rest[i + 1];
    if (v === undefined) throw new Error(`${name} needs a value`);
    rest.splice(i, 2);
    return v;
  };
  switch (cmd) {
    case 'up': {
      const prefix = option('--prefix');
      const json = flag('--json');
      if (rest.length !== 1) throw new Error(USAGE);
      const priv = canRunPrivileged();
      if (!priv.ok) throw new Error(priv.reason);
      const tb = await createTestbed(loadTopology(rest[0]!), { prefix, persistent: true });
      if (json) {
        console.log(JSON.stringify(tb.describe(), null, 2));
      } else {
        console.log(`testbed ${tb.prefix} (${tb.topology.name})`);
        for (const n of tb.nodes.values()) {
          console.log(`  ${n.name}${n.role ? ` [${n.role}]` : ''}  ns ${n.ns}${n.forward ? '  forwarding' : ''}`);
          for (const f of n.ifaces) {
            console.log(
              `    ${f.name} #${f.ifindex} ${f.mac} ${f.v4Cidr} ${f.v6Cidr} -> ${f.peer.node}/${f.peer.iface}${f.passXdp ? ' xdp_pass' : ''}`,
            );
          }
          for (const e of n.extraAddresses) console.log(`    ${e.dev} ${e.cidr}`);
        }
        console.log(
          `shell: ip netns exec ${tb.ns(tb.topology.nodes[0]!.name)} bash    remove: scripts/testbed down ${tb.prefix}`,
        );
      }
      return 0;
    }
    case 'down': {
      if (rest.length !== 1) throw new Error(USAGE);
      destroyPrefix(rest[0]!);
      return 0;
    }
    case 'clean': {
      const all = flag('--all');
      const removed = cleanStale({ all });
      console.log(removed.length ? `removed ${removed.join(' ')}` : 'nothing stale');
      return 0;
    }
    case 'ls': {
      for (const t of listTestbeds()) {
        const who = t.owner ? `pid ${t.owner.pid}` : 'no marker';
        console.log(
          `${t.prefix}  ${t.state} (${who}${t.owner?.topology ? `, ${t.owner.topology}` : ''})  ${t.namespaces.join(' ')}`,
        );
      }
      return 0;
    }
    default:
      console.error(USAGE);
      return cmd === undefined || cmd === '-h' || cmd === '--help' ? 0 : 2;
  }
}
