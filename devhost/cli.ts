/** Command line of `node dist/devhost/main.js`. */
export interface CliOptions {
  appRoot: string;
  port: number | undefined;
  logRequests: boolean;
  verbose: boolean;
  help: boolean;
}

export const USAGE = `Usage: node dist/devhost/main.js [--app-root <dir>] [--port <n>] [--quiet] [--verbose]

  --app-root <dir>  function app folder (package.json, host.json, local.settings.json); default: cwd
  --port <n>        HTTP port (0 = any free port); default: $PORT, else local.settings.json
                    Host.LocalHttpPort, else 7071
  --quiet           do not log each HTTP request
  --verbose         also log debug messages (library system logs, storage details)
`;

export class CliError extends Error {}

function parsePort(text: string | undefined, source: string): number {
  const port = Number(text);
  if (text === undefined || !/^\d+$/.test(text) || port > 65_535) throw new CliError(`${source} must be a port number (0-65535), got "${text ?? ''}".`);
  return port;
}

export function parseCli(argv: string[], env: NodeJS.ProcessEnv, cwd: string): CliOptions {
  const options: CliOptions = { appRoot: cwd, port: undefined, logRequests: true, verbose: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[++i];
      if (next === undefined) throw new CliError(`${flag} needs a value.`);
      return next;
    };
    switch (flag) {
      case '--app-root':
        options.appRoot = value();
        break;
      case '--port':
        options.port = parsePort(value(), '--port');
        break;
      case '--quiet':
        options.logRequests = false;
        break;
      case '--verbose':
        options.verbose = true;
        break;
      case '--help':
      case '-h':
        options.help = true;
        break;
      default:
        throw new CliError(`Unknown argument "${arg}".\n${USAGE}`);
    }
  }
  if (options.port === undefined && env['PORT'] !== undefined && env['PORT'] !== '') options.port = parsePort(env['PORT'], 'PORT');
  return options;
}
