// The benchmark command line. `node dist/bench/cli.js <workload> [args] [flags]` runs one workload against running
// servers (etcd benchmark's commands and flags); `compare` (or `--compare`) runs the side-by-side suite against a
// real etcd and ours; `profile` profiles our server under put; `help` lists everything. See bench/README.md.

import { commonFlags, flagHelp, parseFlags } from './lib/flags';
import { resultJson, runWorkload, textReport } from './lib/runner';
import { workloadByName, workloads } from './workloads';
import { compareFlags, runCompare } from './compare/compare';
import { profileFlags, runProfile } from './compare/profile';

function usage(): string {
  let out = 'Usage:\n  node dist/bench/cli.js <workload> [args] [flags]   run one workload against --endpoints\n';
  out += '  node dist/bench/cli.js compare [flags]              side by side with a real etcd (also: --compare)\n';
  out += '  node dist/bench/cli.js profile [flags]              CPU profile of our server under put\n\nWorkloads:\n';
  for (const w of workloads) out += `  ${w.name.padEnd(18)}${w.summary}\n`;
  out += `\nFlags of every workload:\n${flagHelp(commonFlags)}\n\nRun "node dist/bench/cli.js <workload> --help" for its own flags.\n`;
  return out;
}

async function main(argv: string[]): Promise<number> {
  let [command, ...rest] = argv;
  if (command === '--compare') command = 'compare';
  else if (argv.includes('--compare')) {
    rest = argv.filter((a) => a !== '--compare');
    command = 'compare';
  }
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(usage());
    return command === undefined ? 1 : 0;
  }
  if (command === 'compare') {
    if (rest.includes('--help')) {
      process.stdout.write(`Usage: npm run bench -- --compare [flags]\n\n${flagHelp(compareFlags)}\n`);
      return 0;
    }
    return runCompare(parseFlags(rest, compareFlags));
  }
  if (command === 'profile') {
    if (rest.includes('--help')) {
      process.stdout.write(`Usage: node dist/bench/cli.js profile [flags]\n\n${flagHelp(profileFlags)}\n`);
      return 0;
    }
    return runProfile(parseFlags(rest, profileFlags));
  }
  const workload = workloadByName(command);
  const specs = [...commonFlags, ...workload.flags];
  if (rest.includes('--help')) {
    process.stdout.write(`Usage: node dist/bench/cli.js ${workload.name} [flags]\n\n${workload.summary}\n\n${flagHelp(specs)}\n`);
    return 0;
  }
  const flags = parseFlags(rest, specs);
  const result = await runWorkload(workload, flags, flags.list('endpoints'));
  process.stdout.write(flags.bool('json') ? `${JSON.stringify(resultJson(result), null, 2)}\n` : textReport(result));
  return result.errors > 0 && result.ops === 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
