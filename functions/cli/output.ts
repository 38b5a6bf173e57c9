import { PowertoolsSyncLog, SyncLogger } from '../sync';

/**
 * Where the command's output goes. stdout carries only the answer (one JSON document with --json);
 * logs and notices go to stderr, so `did-sync ... --json | jq` always parses. Every write is awaited
 * until the OS has it: a pipe takes 64 KB at a time, and a process that exits before the rest drains
 * cuts the document off.
 */

function written(stream: NodeJS.WriteStream, text: string): Promise<void> {
  if (text === '') return Promise.resolve();
  return new Promise((resolve) => {
    // A reader that went away (`| head`) is not our failure: the rest of the answer has nowhere to go.
    stream.write(text, () => resolve());
  });
}

// EPIPE from a closed reader arrives as an 'error' event; without a listener it would crash the process.
process.stdout.on('error', () => undefined);
process.stderr.on('error', () => undefined);

export function out(text: string): Promise<void> {
  return written(process.stdout, text);
}

export function outJson(value: unknown): Promise<void> {
  return written(process.stdout, `${JSON.stringify(value, null, 2)}\n`);
}

export function err(line: string): Promise<void> {
  return written(process.stderr, `${line}\n`);
}

/** Ends the process once both streams have handed everything to the OS. */
export async function exitAfterDrain(code: number): Promise<never> {
  await Promise.all([written(process.stdout, ''), flush(process.stdout), flush(process.stderr)]);
  process.exit(code);
}

/** Resolves when everything written to the stream so far has been handed over (an empty write queues behind it). */
function flush(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.writableLength === 0) return Promise.resolve();
  return new Promise((resolve) => {
    stream.write(Buffer.alloc(0), () => resolve());
  });
}

/**
 * The engine's structured log lines (the same Powertools JSON as in Lambda), all on stderr: Powertools
 * writes info and debug to stdout, which belongs to the answer here.
 */
export function stderrSyncLog(): PowertoolsSyncLog {
  return new PowertoolsSyncLog(
    new SyncLogger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'did-sync' }, process.stderr),
  );
}
