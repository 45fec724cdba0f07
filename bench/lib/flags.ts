// Flag parsing in the style of etcd's benchmark tool (cobra/pflag): `--name value`, `--name=value`, booleans as
// `--name` or `--name=false`, durations in Go syntax. Each command declares its flags; unknown flags are errors.

import { parseDurationMs } from './util';

export type FlagKind = 'int' | 'float' | 'bool' | 'string' | 'duration' | 'strings';

export interface FlagSpec {
  name: string;
  kind: FlagKind;
  default: number | boolean | string | string[];
  help: string;
}

/** Parsed flag values: numbers for int/float, milliseconds for durations, string[] for comma lists. */
export type Options = Record<string, number | boolean | string | string[]>;

export class Flags {
  constructor(readonly values: Options) {}

  int(name: string): number {
    return this.num(name);
  }

  /** A number flag (int, float, or a duration in milliseconds). */
  num(name: string): number {
    const v = this.values[name];
    if (typeof v !== 'number') throw new Error(`flag --${name} is not a number`);
    return v;
  }

  bool(name: string): boolean {
    return this.values[name] === true;
  }

  str(name: string): string {
    const v = this.values[name];
    if (typeof v !== 'string') throw new Error(`flag --${name} is not a string`);
    return v;
  }

  list(name: string): string[] {
    const v = this.values[name];
    if (!Array.isArray(v)) throw new Error(`flag --${name} is not a list`);
    return v;
  }

  /** Positional arguments (after the command name). */
  get args(): string[] {
    return (this.values._args as string[] | undefined) ?? [];
  }
}

export function parseFlags(argv: string[], specs: FlagSpec[]): Flags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values: Options = {};
  for (const s of specs) values[s.name] = Array.isArray(s.default) ? [...s.default] : s.default;
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('--')) {
      args.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq === -1 ? undefined : eq);
    const spec = byName.get(name);
    if (spec === undefined) throw new Error(`unknown flag: --${name}`);
    let text: string;
    if (eq !== -1) text = a.slice(eq + 1);
    else if (spec.kind === 'bool') text = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new Error(`flag needs an argument: --${name}`);
      text = next;
      i++;
    }
    values[name] = parseValue(spec, text);
  }
  values._args = args;
  return new Flags(values);
}

function parseValue(spec: FlagSpec, text: string): number | boolean | string | string[] {
  switch (spec.kind) {
    case 'int': {
      const n = Number(text);
      if (!Number.isInteger(n)) throw new Error(`invalid argument "${text}" for --${spec.name}: not an integer`);
      return n;
    }
    case 'float': {
      const n = Number(text);
      if (!Number.isFinite(n)) throw new Error(`invalid argument "${text}" for --${spec.name}: not a number`);
      return n;
    }
    case 'bool':
      if (text === 'true' || text === '1') return true;
      if (text === 'false' || text === '0') return false;
      throw new Error(`invalid argument "${text}" for --${spec.name}: not a boolean`);
    case 'duration':
      return parseDurationMs(text);
    case 'strings':
      return text.split(',').map((s) => s.trim()).filter((s) => s !== '');
    case 'string':
      return text;
  }
}

export function flagHelp(specs: FlagSpec[]): string {
  const rows = specs.map((s) => {
    const def = Array.isArray(s.default) ? s.default.join(',') : String(s.default);
    const kind = s.kind === 'bool' ? '' : ` ${s.kind}`;
    return [`  --${s.name}${kind}`, `${s.help}${def === '' || def === 'false' ? '' : ` (default ${s.kind === 'duration' ? `${def}ms` : def})`}`];
  });
  const width = Math.max(...rows.map((r) => r[0]!.length)) + 2;
  return rows.map(([a, b]) => `${a!.padEnd(width)}${b}`).join('\n');
}

/** The flags every workload has (etcd benchmark's root flags, plus the run-length and worker knobs). */
export const commonFlags: FlagSpec[] = [
  { name: 'endpoints', kind: 'strings', default: ['127.0.0.1:2379'], help: 'gRPC endpoints' },
  { name: 'conns', kind: 'int', default: 1, help: 'Total number of gRPC connections' },
  { name: 'clients', kind: 'int', default: 1, help: 'Total number of gRPC clients (multiplexed over --conns)' },
  { name: 'total', kind: 'int', default: 10000, help: 'Total number of requests (ignored when --duration is set)' },
  { name: 'duration', kind: 'duration', default: 0, help: 'Run for this long instead of --total requests (e.g. 10s)' },
  { name: 'warmup', kind: 'duration', default: 0, help: 'With --duration: run this long first without recording' },
  { name: 'rate', kind: 'int', default: 0, help: 'Maximum requests per second (0 is no limit)' },
  { name: 'workers', kind: 'int', default: 0, help: 'Worker threads running the clients (0 = automatic)' },
  { name: 'transport', kind: 'string', default: 'grpc-js', help: 'Client transport: grpc-js (@grpc/grpc-js) or h2 (gRPC framed over node:http2, half the client CPU)' },
  { name: 'json', kind: 'bool', default: false, help: 'Print the result as JSON instead of text' },
  { name: 'seed', kind: 'int', default: 1, help: 'Seed for the key choices' },
];
