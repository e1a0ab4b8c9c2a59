/**
 * Console logging for the local host. Information and below go to stdout, warnings and errors to
 * stderr, each line prefixed with a time and a source ("host", a function name, ...), so a test
 * harness reading both streams can still tell who said what.
 */
export type LogLevel = 'trace' | 'debug' | 'information' | 'warning' | 'error' | 'critical' | 'none';

const levelRank: Record<LogLevel, number> = {
  trace: 0,
  debug: 1,
  information: 2,
  warning: 3,
  error: 4,
  critical: 5,
  none: 6,
};

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && value in levelRank;
}

export interface Logger {
  log(level: LogLevel, source: string, message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** Debug lines are dropped unless the host runs with --verbose. */
  debug(message: string): void;
}

export function createLogger(options: { minimumLevel: LogLevel }): Logger {
  const minimum = levelRank[options.minimumLevel];
  const write = (level: LogLevel, source: string, message: string): void => {
    if (level === 'none' || levelRank[level] < minimum) return;
    const time = new Date().toISOString().slice(11, 23);
    const line = `[${time}] [${source}] ${message}\n`;
    if (levelRank[level] >= levelRank.warning) process.stderr.write(line);
    else process.stdout.write(line);
  };
  return {
    log: write,
    info: (message) => write('information', 'host', message),
    warn: (message) => write('warning', 'host', message),
    error: (message) => write('error', 'host', message),
    debug: (message) => write('debug', 'host', message),
  };
}

/** `Error: message` without the stack, for logs a user reads; stacks only where we log a bug. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
