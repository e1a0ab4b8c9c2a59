/**
 * Entry point of the local host: `node dist/devhost/main.js [--app-root <dir>] [--port <n>]`.
 * Runs the compiled function app without Azure Functions Core Tools (see "The local host" in README.md).
 * Exit codes: 0 after a clean stop (SIGINT/SIGTERM), 1 when start-up fails or the app crashes.
 */
import { CliError, parseCli, USAGE } from './cli';
import { startLocalHost, StartupError } from './host';
import { createLogger } from './log';
import { AppLoadError } from './worker/loadApp';

async function main(): Promise<void> {
  const options = parseCli(process.argv.slice(2), process.env, process.cwd());
  if (options.help) {
    process.stdout.write(USAGE);
    return;
  }
  const logger = createLogger({ minimumLevel: options.verbose ? 'debug' : 'information' });

  process.on('unhandledRejection', (reason) => {
    logger.error(`Unhandled promise rejection in the app: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`);
  });
  process.on('uncaughtException', (err) => {
    // Like the Node worker: an exception nothing caught leaves the app in an unknown state, so stop.
    // Accepted entity operations and orchestration work are in storage and resume on the next start.
    logger.error(`Uncaught exception, stopping: ${err.stack ?? err.message}`);
    process.exit(1);
  });

  const host = await startLocalHost({ appRoot: options.appRoot, port: options.port, logRequests: options.logRequests, logger });
  let signals = 0;
  const shutdown = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      logger.warn(`${signal} again: exiting now.`);
      process.exit(1);
    }
    logger.info(`${signal} received: stopping (in-flight entity batches and orchestration episodes get a few seconds to commit).`);
    host.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error(`Stopping failed: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

main().catch((err: unknown) => {
  if (err instanceof StartupError || err instanceof CliError || err instanceof AppLoadError) {
    process.stderr.write(`Local host failed to start: ${err.message}\n`);
  } else {
    process.stderr.write(`Local host failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
  process.exit(1);
});
